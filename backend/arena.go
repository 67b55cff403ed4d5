package backend

import (
	"runtime"
	"unsafe"
)

// arena is the memory a program's planned values live in. The float32 programs of a
// model share one (they run one at a time): it grows to the largest plan when a program
// that needs it first runs.
//
// Its memory is mapped from the operating system (mem_linux.go) rather than allocated
// on the Go heap, where a value as large as the activations of a training step would
// set the garbage collector's goal (twice the live heap) hundreds of megabytes beyond
// what the run uses, and an arena left behind by growth would stay resident until a
// collection. A mapping left behind by growth gives its pages back at once and stays
// mapped, reading as zeros, until nothing refers to the arena: a slice of it that a
// caller kept against the rules reads zeros rather than faulting.
type arena[T float] struct {
	want int
	buf  []T
	maps *mappings
}

// mappings are the arena's memory maps, released when the arena is unreachable.
type mappings struct {
	live    []byte
	retired [][]byte
}

func (m *mappings) release() {
	for _, b := range append(m.retired, m.live) {
		unmapMemory(b)
	}
}

func newArena[T float]() *arena[T] {
	a := &arena[T]{maps: new(mappings)}
	runtime.AddCleanup(a, (*mappings).release, a.maps)
	return a
}

// reserve records that a program needs n elements.
func (a *arena[T]) reserve(n int) { a.want = max(a.want, n) }

// get returns the arena, at least n elements long.
func (a *arena[T]) get(n int) []T {
	n = max(n, a.want)
	if len(a.buf) >= n {
		return a.buf
	}
	if a.maps.live != nil {
		releaseMemory(a.maps.live)
		a.maps.retired = append(a.maps.retired, a.maps.live)
	}
	var z T
	b := mapMemory(n * int(unsafe.Sizeof(z)))
	a.maps.live = b
	a.buf = unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), n)
	return a.buf
}

// holds reports whether s lies in the arena.
func (a *arena[T]) holds(s []T) bool {
	if len(s) == 0 || len(a.buf) == 0 {
		return false
	}
	var z T
	size := unsafe.Sizeof(z)
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(a.buf)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(s)))
	return p+uintptr(len(s))*size > lo && p < lo+uintptr(len(a.buf))*size
}
