package main

import (
	"fmt"
	"io"
	"slices"
	"time"

	"toolkit/backend"
)

// opTimes adds up the steps' times by op type and direction (-ops): the wall time, and
// the process's CPU time between the end of the step before and the end of this one (an
// asynchronous weight gradient's work is counted in the steps it runs beside).
type opTimes struct {
	last  time.Duration
	byKey map[opKey]*opTime
	// byStep is the same per step (-steps), each node and its gradient apart.
	byStep map[string]*opTime
}

type opKey struct {
	op       string
	backward bool
}

type opTime struct {
	wall, cpu time.Duration
	steps     int
}

// add counts one step of wall and cpu time.
func (t *opTime) add(wall, cpu time.Duration) {
	t.wall += wall
	t.cpu += cpu
	t.steps++
}

// newOpTimes starts the tables, by op and, with steps, by step too.
func newOpTimes(steps bool) *opTimes {
	o := &opTimes{last: cpuTime(), byKey: map[opKey]*opTime{}}
	if steps {
		o.byStep = map[string]*opTime{}
	}
	return o
}

func (o *opTimes) add(s backend.StepTime) {
	now := cpuTime()
	k := opKey{s.Op, s.Backward}
	t := o.byKey[k]
	if t == nil {
		t = new(opTime)
		o.byKey[k] = t
	}
	t.add(s.Wall, now-o.last)
	if o.byStep != nil {
		st := o.byStep[s.Step]
		if st == nil {
			st = new(opTime)
			o.byStep[s.Step] = st
		}
		st.add(s.Wall, now-o.last)
	}
	o.last = now
}

// printSteps writes the n slowest steps, per run.
func (o *opTimes) printSteps(w io.Writer, runs, n int) {
	names := make([]string, 0, len(o.byStep))
	for k := range o.byStep {
		names = append(names, k)
	}
	slices.SortFunc(names, func(a, b string) int { return int(o.byStep[b].wall - o.byStep[a].wall) })
	fmt.Fprintf(w, "%-60s %9s %9s %6s\n", "step", "wall/run", "cpu/run", "cores")
	for _, k := range names[:min(n, len(names))] {
		t := o.byStep[k]
		fmt.Fprintf(w, "%-60s %8.2fms %8.2fms %6.2f\n", k, ms(t.wall, runs), ms(t.cpu, runs), float64(t.cpu)/float64(max(t.wall, 1)))
	}
}

// print writes the table, largest wall time first, per run.
func (o *opTimes) print(w io.Writer, runs int) {
	keys := make([]opKey, 0, len(o.byKey))
	var wall, cpu time.Duration
	for k, t := range o.byKey {
		keys = append(keys, k)
		wall += t.wall
		cpu += t.cpu
	}
	slices.SortFunc(keys, func(a, b opKey) int { return int(o.byKey[b].wall - o.byKey[a].wall) })
	fmt.Fprintf(w, "%-28s %9s %6s %9s %6s %6s\n", "op", "wall/run", "share", "cpu/run", "cores", "steps")
	for _, k := range keys {
		t := o.byKey[k]
		name := k.op
		if k.backward {
			name = "d" + name
		}
		fmt.Fprintf(w, "%-28s %8.1fms %5.1f%% %8.1fms %6.2f %6d\n", name, ms(t.wall, runs), 100*float64(t.wall)/float64(wall),
			ms(t.cpu, runs), float64(t.cpu)/float64(max(t.wall, 1)), t.steps/runs)
	}
	fmt.Fprintf(w, "%-28s %8.1fms %5.1f%% %8.1fms %6.2f\n", "all steps", ms(wall, runs), 100.0, ms(cpu, runs), float64(cpu)/float64(max(wall, 1)))
}

func ms(d time.Duration, runs int) float64 { return float64(d) / float64(runs) / 1e6 }
