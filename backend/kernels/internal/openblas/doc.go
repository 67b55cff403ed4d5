// Package openblas links OpenBLAS (cgo, -lopenblas: Debian's libopenblas-dev)
// for the kernels package's "openblas" build tag. It is a package of its own
// because a package using cgo cannot hold Go assembly, and the kernels
// package has its own GEMM micro-kernel in assembly. Without the tag it is
// empty, so the default build stays free of cgo.
package openblas
