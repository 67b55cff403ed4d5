//go:build !unix

package optim

// cpuNanos is not measured here; the benchmarks then report 0 CPU time.
func cpuNanos() int64 { return 0 }
