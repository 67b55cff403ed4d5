package optim

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// chunk is the number of elements one worker takes at a time: large enough to amortise
// the hand-off, small enough to balance a few big tensors over the cores. serialBelow is
// the total size under which work stays on the calling goroutine. Variables for the tests.
var (
	chunk       = 1 << 15
	serialBelow = 1 << 16
)

// span is the range [lo, hi) of parameter p.
type span struct{ p, lo, hi int }

// spans cuts the values of every parameter into chunks.
func spans(params []Param) (ss []span, total int) {
	return spansOf(len(params), func(i int) int { return len(params[i].Value) })
}

// gradSpans cuts the gradients of every parameter into chunks.
func gradSpans(params []Param) (ss []span, total int) {
	return spansOf(len(params), func(i int) int { return len(params[i].Grad) })
}

// spansOf cuts n slices of the given lengths into chunks.
func spansOf(n int, length func(i int) int) (ss []span, total int) {
	for i := range n {
		size := length(i)
		total += size
		for lo := 0; lo < size; lo += chunk {
			ss = append(ss, span{i, lo, min(lo+chunk, size)})
		}
	}
	return ss, total
}

// forSpans runs fn on every span, on up to GOMAXPROCS goroutines when there is enough
// work (total elements). fn(i, s) must only touch elements of span s; i is its index.
func forSpans(ss []span, total int, fn func(i int, s span)) {
	workers := min(runtime.GOMAXPROCS(0), len(ss))
	if total < serialBelow || workers <= 1 {
		for i, s := range ss {
			fn(i, s)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(ss) {
					return
				}
				fn(i, ss[i])
			}
		})
	}
	wg.Wait()
}
