package backend

import (
	"fmt"
	"sync"

	"toolkit/backend/kernels"
)

// asyncGradient is implemented by the kernels whose gradient with respect to some input
// can run beside the rest of the backward pass. asyncBackward does at once what the
// other gradients depend on and returns the rest as a function, or nil when input i's
// gradient must run in order. It is offered only for a parameter read by this op alone
// (its gradient is a leaf of the graph: nothing in the program reads it), and the
// function reads only forward values and the output's gradient, which no later op of
// the tape changes.
type asyncGradient[T float] interface {
	// runsAsync reports whether input i's gradient may run beside the backward pass.
	runsAsync(i int) bool
	asyncBackward(i int, ins [][]T, out, gout, gin []T) func()
}

// asyncGroup runs a program's asynchronous gradients and waits for them at the end of
// the run. A convolution's weight gradient (half of a VGG training step's work on
// small maps) then fills the core the data gradients and the elementwise ops leave
// idle; each kernel still splits its own work across the cores.
type asyncGroup struct {
	tasks []*kernels.Task
	mu    sync.Mutex
	err   error
}

// goRun starts fn beside the caller (kernels.Go); a panic in it becomes the error wait
// returns.
func (a *asyncGroup) goRun(name string, fn func()) {
	a.tasks = append(a.tasks, kernels.Go(func() {
		defer func() {
			if r := recover(); r != nil {
				a.mu.Lock()
				if a.err == nil {
					a.err = fmt.Errorf("%s: %v", name, r)
				}
				a.mu.Unlock()
			}
		}()
		fn()
	}))
}

// wait waits for every function started since the last wait and returns the first
// error among them.
func (a *asyncGroup) wait() error {
	for _, t := range a.tasks {
		t.Wait()
	}
	clear(a.tasks)
	a.tasks = a.tasks[:0]
	a.mu.Lock()
	defer a.mu.Unlock()
	err := a.err
	a.err = nil
	return err
}
