package backend

import (
	"fmt"
	"syscall"
)

// mapMemory maps n bytes of zeroed memory, asking for transparent huge pages (fewer
// TLB misses over activations of hundreds of megabytes, where the kernel allows them).
func mapMemory(n int) []byte {
	b, err := syscall.Mmap(-1, 0, max(n, 1), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		panic(fmt.Sprintf("backend: mapping %d bytes for a program's activations: %v", n, err))
	}
	_ = syscall.Madvise(b, syscall.MADV_HUGEPAGE)
	return b
}

// releaseMemory gives the pages of a mapping back to the system; it stays mapped and
// reads as zeros.
func releaseMemory(b []byte) { _ = syscall.Madvise(b, syscall.MADV_DONTNEED) }

func unmapMemory(b []byte) { _ = syscall.Munmap(b) }
