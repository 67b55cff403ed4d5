package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestParallelForChunks checks that parallelFor runs every chunk exactly once, chunk i
// over [i*n/w, (i+1)*n/w) with worker index i, for w above and below n and the
// processors, with nested calls (a chunk that splits its own work) and with tasks
// started by Go running beside it, on one processor and on several.
func TestParallelForChunks(t *testing.T) {
	for _, procs := range []int{1, 2, 4} {
		prev := runtime.GOMAXPROCS(procs)
		for _, c := range []struct{ n, w int }{{1, 4}, {5, 1}, {7, 2}, {7, 3}, {100, 7}, {3, 8}, {1000, 16}} {
			var mu sync.Mutex
			seen := map[int][2]int{}
			hits := make([]atomic.Int32, c.n)
			var inner atomic.Int64
			task := Go(func() {
				parallelFor(64, 4, func(_, lo, hi int) { inner.Add(int64(hi - lo)) })
			})
			parallelFor(c.n, c.w, func(worker, lo, hi int) {
				mu.Lock()
				if _, dup := seen[worker]; dup {
					t.Errorf("procs %d, n %d, w %d: worker %d ran twice", procs, c.n, c.w, worker)
				}
				seen[worker] = [2]int{lo, hi}
				mu.Unlock()
				parallelFor(hi-lo, 2, func(_, a, b int) {
					for i := lo + a; i < lo+b; i++ {
						hits[i].Add(1)
					}
				})
			})
			task.Wait()
			w := min(c.w, c.n)
			if len(seen) != w {
				t.Errorf("procs %d, n %d, w %d: %d chunks ran, want %d", procs, c.n, c.w, len(seen), w)
			}
			for i, r := range seen {
				if want := [2]int{i * c.n / w, (i + 1) * c.n / w}; w > 1 && r != want {
					t.Errorf("procs %d, n %d, w %d: chunk %d ran %v, want %v", procs, c.n, c.w, i, r, want)
				}
			}
			for i := range hits {
				if h := hits[i].Load(); h != 1 {
					t.Fatalf("procs %d, n %d, w %d: item %d ran %d times", procs, c.n, c.w, i, h)
				}
			}
			if got := inner.Load(); got != 64 {
				t.Errorf("procs %d: the task's parallelFor covered %d of 64 items", procs, got)
			}
		}
		runtime.GOMAXPROCS(prev)
	}
}

// TestGoWaitRunsTaskOnce checks that a task started by Go runs once whether a worker
// or Wait takes it, and that its effects are seen after Wait.
func TestGoWaitRunsTaskOnce(t *testing.T) {
	for _, procs := range []int{1, 2} {
		prev := runtime.GOMAXPROCS(procs)
		for range 200 {
			var runs atomic.Int32
			values := make([]int, 100)
			tasks := make([]*Task, 8)
			for i := range tasks {
				tasks[i] = Go(func() {
					runs.Add(1)
					for j := range values[i*10 : i*10+10] {
						values[i*10+j] = i
					}
				})
			}
			for _, task := range tasks {
				task.Wait()
			}
			if r := runs.Load(); r != int32(len(tasks)) {
				t.Fatalf("procs %d: %d runs of %d tasks", procs, r, len(tasks))
			}
			for j, v := range values[:80] {
				if v != j/10 {
					t.Fatalf("procs %d: values[%d] = %d after Wait, want %d", procs, j, v, j/10)
				}
			}
		}
		runtime.GOMAXPROCS(prev)
	}
}

// TestParallelForPanics checks that a chunk's panic comes out of parallelFor (and a
// task's out of its Wait) on the caller's goroutine, with its value, once every other
// chunk is done, wherever the chunk ran; that a task which recovers a panic from the
// kernels it runs (as the backend's asynchronous gradients do) waits normally; and that
// the pool still works afterwards.
func TestParallelForPanics(t *testing.T) {
	for _, procs := range []int{1, 2, 4} {
		prev := runtime.GOMAXPROCS(procs)
		catch := func(f func()) (v any) {
			defer func() { v = recover() }()
			f()
			return nil
		}
		for rep := range 50 {
			var done atomic.Int32
			v := catch(func() {
				parallelFor(8, 8, func(i, _, _ int) {
					if i == rep%8 {
						panic("chunk failed")
					}
					done.Add(1)
				})
			})
			if v != "chunk failed" || done.Load() != 7 {
				t.Fatalf("procs %d: parallelFor panicked with %v after %d of 7 other chunks", procs, v, done.Load())
			}
			task := Go(func() { panic("task failed") })
			if v := catch(task.Wait); v != "task failed" {
				t.Fatalf("procs %d: Wait panicked with %v", procs, v)
			}
			var recovered atomic.Value
			task = Go(func() {
				defer func() { recovered.Store(recover()) }()
				parallelFor(4, 4, func(i, _, _ int) {
					if i == 3 {
						panic("kernel failed")
					}
				})
			})
			if v := catch(task.Wait); v != nil || recovered.Load() != "kernel failed" {
				t.Fatalf("procs %d: Wait panicked with %v, the task recovered %v", procs, v, recovered.Load())
			}
		}
		var sum atomic.Int64
		parallelFor(100, 4, func(_, lo, hi int) { sum.Add(int64(hi - lo)) })
		if sum.Load() != 100 {
			t.Fatalf("procs %d: after the panics parallelFor covered %d of 100 items", procs, sum.Load())
		}
		runtime.GOMAXPROCS(prev)
	}
}

// TestSpinSecondsCounted checks that the time a worker spends polling for work after
// its job is counted in SpinSeconds (the benchmarks subtract it from the CPU time).
func TestSpinSecondsCounted(t *testing.T) {
	prev := runtime.GOMAXPROCS(2)
	defer runtime.GOMAXPROCS(prev)
	before := SpinSeconds()
	for range 20 {
		parallelFor(2, 2, func(_, _, _ int) {})
	}
	for range 1000 {
		if SpinSeconds() > before {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("SpinSeconds stayed at %g after the workers' jobs", before)
}
