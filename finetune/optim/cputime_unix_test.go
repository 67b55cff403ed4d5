//go:build unix

package optim

import "syscall"

// cpuNanos returns the CPU time (user and system) the process has used so far, which the
// benchmarks report next to wall time: on a shared machine it stays meaningful when wall
// time does not.
func cpuNanos() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
