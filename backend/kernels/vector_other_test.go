//go:build !amd64 || purego

package kernels

func vectorVariants() []vectorVariant { return nil }

func bf16StoreVariants() []bf16StoreVariant { return nil }
