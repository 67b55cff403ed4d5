//go:build !amd64 || purego

package kernels

func vectorVariants() []vectorVariant { return nil }
