//go:build !linux

package backend

// On systems other than Linux the arena is on the Go heap.

func mapMemory(n int) []byte { return make([]byte, n) }

func releaseMemory([]byte) {}

func unmapMemory([]byte) {}
