package kernels

import (
	"math"
	"math/bits"
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

// eachOnOneCore runs fn(i, nw) for every item i < n of a batch of independent products:
// in parallel, each with nw = 1 (the item on one core), when there are items enough for
// the cores, else one after another with nw the cores (each item split across them).
// Fine splits of small products cost more than they gain (ResNet-50's pointwise layers,
// attention's per-head products).
func eachOnOneCore(n int, fn func(i, nw int)) {
	procs := runtime.GOMAXPROCS(0)
	if procs > 1 && n >= procs {
		parallelFor(n, procs, func(_, lo, hi int) {
			for i := lo; i < hi; i++ {
				fn(i, 1)
			}
		})
		return
	}
	for i := range n {
		fn(i, procs)
	}
}

// Scratch buffers (im2col columns, packed GEMM operands, partial sums) are
// kept on free lists by size class (powers of two), so that a request is
// always served by a buffer that fits and the lists do not churn when
// kernels of different sizes alternate. Unlike a sync.Pool, the lists are
// not emptied by the garbage collector: a training step allocates hundreds
// of megabytes of tensors, and buffers dropped at every GC cycle would be
// allocated and cleared again on the next step. Each class keeps at most
// maxFree buffers; the memory kept is bounded by what the largest layers
// of a model need at once (tens of megabytes for VGG19 at 224×224).
type freeList struct {
	mu   sync.Mutex
	bufs []unsafe.Pointer // *float32 or *float64 of capacity 1<<class
}

const maxFree = 16

var free32, free64 [64]freeList

// sizeClass returns the list index for n elements: ceil(log2(n)).
func sizeClass(n int) int { return bits.Len(uint(max(n, 1) - 1)) }

func (l *freeList) get() unsafe.Pointer {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.bufs) == 0 {
		return nil
	}
	p := l.bufs[len(l.bufs)-1]
	l.bufs = l.bufs[:len(l.bufs)-1]
	return p
}

func (l *freeList) put(p unsafe.Pointer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.bufs) < maxFree {
		l.bufs = append(l.bufs, p)
	}
}

// getBuf returns a scratch slice of length n (contents undefined). Release it
// with putBuf.
func getBuf[T Float](n int) []T {
	cl := sizeClass(n)
	lists := &free64
	if is32[T]() {
		lists = &free32
	}
	if p := lists[cl].get(); p != nil {
		return unsafe.Slice((*T)(p), 1<<cl)[:n]
	}
	return make([]T, n, 1<<cl)
}

// putBuf returns a slice obtained from getBuf to its free list.
func putBuf[T Float](s []T) {
	c := cap(s)
	if c == 0 || c&(c-1) != 0 {
		return // not from getBuf
	}
	lists := &free64
	if is32[T]() {
		lists = &free32
	}
	lists[sizeClass(c)].put(unsafe.Pointer(unsafe.SliceData(s[:c])))
}

// getInt32s returns a scratch slice of n int32 (offset tables) from the
// float32 free lists; release it with putInt32s.
func getInt32s(n int) []int32 {
	f := getBuf[float32](max(n, 1))
	return unsafe.Slice((*int32)(unsafe.Pointer(unsafe.SliceData(f))), cap(f))[:n]
}

func putInt32s(s []int32) {
	if cap(s) == 0 {
		return
	}
	putBuf(unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(s[:1]))), cap(s)))
}
