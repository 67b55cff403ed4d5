//go:build !amd64 || purego

package kernels

// missedKernelPaths is empty: this build has no assembly kernel paths (another
// architecture, or -tags purego, which leaves them out by design).
func missedKernelPaths() []string { return nil }
