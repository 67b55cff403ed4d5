package kernels

import (
	"math"
	"runtime"
	"sync"
	"unsafe"
)

// Float is the element type of every numerical kernel: float32 for training,
// float64 for gradient checks.
type Float interface {
	~float32 | ~float64
}

// is32 reports whether T is a 4-byte float.
func is32[T Float]() bool {
	var z T
	return unsafe.Sizeof(z) == 4
}

// as32 reinterprets a []T whose T is ~float32 as []float32.
func as32[T Float](s []T) []float32 {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(s))), len(s))
}

// as64 reinterprets a []T whose T is ~float64 as []float64.
func as64[T Float](s []T) []float64 {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*float64)(unsafe.Pointer(unsafe.SliceData(s))), len(s))
}

func exp[T Float](x T) T  { return T(math.Exp(float64(x))) }
func log[T Float](x T) T  { return T(math.Log(float64(x))) }
func sqrt[T Float](x T) T { return T(math.Sqrt(float64(x))) }

func negInf[T Float]() T { return T(math.Inf(-1)) }

// fill sets every element of s to v.
func fill[T Float](s []T, v T) {
	if v == 0 {
		clear(s)
		return
	}
	for i := range s {
		s[i] = v
	}
}

// need panics unless s holds at least n elements.
func need[T any](kernel, name string, s []T, n int) {
	if len(s) < n {
		panic("kernels: " + kernel + ": " + name + " has " + itoa(len(s)) + " elements, need " + itoa(n))
	}
}

func itoa(v int) string {
	if v == 0 {
		return "0"
	}
	neg := v < 0
	if neg {
		v = -v
	}
	var b [24]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

// workers returns how many goroutines to use for n independent items of
// roughly cost work units (multiply-adds) each: at most GOMAXPROCS and n, and
// no more than keeps at least minWork units per goroutine.
func workers(n int, cost int) int {
	const minWork = 1 << 16
	w := runtime.GOMAXPROCS(0)
	if w > n {
		w = n
	}
	if cost > 0 && n*cost/minWork < w {
		w = n * cost / minWork
	}
	if w < 1 {
		w = 1
	}
	return w
}

// parallelFor splits [0, n) into w contiguous chunks and runs fn on each,
// the last on the calling goroutine. w <= 1 runs fn(0, n) directly.
func parallelFor(n, w int, fn func(worker, lo, hi int)) {
	if w <= 1 || n <= 1 {
		fn(0, 0, n)
		return
	}
	if w > n {
		w = n
	}
	var wg sync.WaitGroup
	for i := 0; i < w-1; i++ {
		lo, hi := i*n/w, (i+1)*n/w
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(i, lo, hi)
		}()
	}
	fn(w-1, (w-1)*n/w, n)
	wg.Wait()
}

// Scratch buffers. The pools hold *[]float32 and *[]float64; a buffer for a
// named float type is the same memory reinterpreted.
var pool32, pool64 sync.Pool

// getBuf returns a scratch slice of length n (contents undefined). Release it
// with putBuf.
func getBuf[T Float](n int) []T {
	if is32[T]() {
		var s []float32
		if p, ok := pool32.Get().(*[]float32); ok && cap(*p) >= n {
			s = (*p)[:n]
		} else {
			s = make([]float32, n)
		}
		return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(s))), n)
	}
	var s []float64
	if p, ok := pool64.Get().(*[]float64); ok && cap(*p) >= n {
		s = (*p)[:n]
	} else {
		s = make([]float64, n)
	}
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(s))), n)
}

// putBuf returns a slice obtained from getBuf to its pool.
func putBuf[T Float](s []T) {
	if cap(s) == 0 {
		return
	}
	s = s[:cap(s)]
	if is32[T]() {
		f := as32(s)
		pool32.Put(&f)
		return
	}
	f := as64(s)
	pool64.Put(&f)
}
