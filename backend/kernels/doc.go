// Package kernels holds the numerical kernels behind the toolkit's backend:
// plain loops and BLAS calls over flat Go slices, with no knowledge of
// gorgonia, ONNX or training. The backend's gorgonia op adapters call them.
//
// # Conventions
//
// Every kernel is generic over [Float] (~float32 | ~float64), so the same
// code runs in float32 for training and in float64 for finite-difference
// gradient checks.
//
// Tensors are flat row-major slices; their dimensions are passed explicitly
// as ints or in small parameter structs ([Conv2DParams], [Pool2DParams]).
// Images are NCHW.
//
// Kernels write into caller-provided output slices and overwrite them (they
// never accumulate into them unless the documentation says so). Outputs must
// not alias inputs unless a function says it allows it (the element-wise
// activations do). Temporary buffers (im2col columns, per-worker partial
// sums) come from a sync.Pool; nothing else is allocated in the hot loops
// and there is no global mutable state.
//
// Each backward pass is split into one function per input (for example
// [Conv2DBackwardData], [Conv2DBackwardWeight] and [Conv2DBackwardBias]) so
// a caller computes only the gradients it needs: dX without dW when a weight
// is frozen, dW without dX for the lowest trained layer.
//
// Shape errors are programming errors and panic with a message naming the
// kernel; parameter structs also have a Validate method returning an error,
// for callers that check user input (an imported ONNX graph) up front.
//
// # Parallelism and BLAS
//
// Matrix products go through [Gemm], which dispatches to a [BLAS]
// implementation: gonum's pure-Go blas/gonum by default. An implementation
// backed by OpenBLAS (gonum.org/v1/netlib, cgo) can be added in a file
// with an "openblas" build tag that defines defaultBLAS; the default file is
// built with !openblas. Convolution and pooling also split the batch (or the
// N*C planes) across runtime.GOMAXPROCS goroutines when the work is large
// enough to pay for it.
//
// # Semantics
//
// The kernels follow ONNX operator semantics, and PyTorch's where ONNX leaves
// a choice open (ceil-mode pooling windows, average-pool divisors, batch-norm
// running variance, label smoothing); each function documents its choice.
// The tests check forward results against plainly written direct loops and
// against PyTorch (run through /usr/bin/python3), and every backward against
// central finite differences in float64.
package kernels
