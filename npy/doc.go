// Package npy reads and writes NumPy .npy files holding float32 arrays in C order, the
// tensor format of `toolkit run` and of the parity fixtures made with PyTorch.
package npy
