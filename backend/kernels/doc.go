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
// # Kernels
//
//   - Matrix products: [Gemm] (BLAS-style), [GemmOpForward] and its
//     backward functions (the ONNX Gemm operator), [MatMul] (ONNX MatMul,
//     batch broadcasting and 1-D promotion).
//   - Convolution: [Conv2DForward], [Conv2DBackwardData],
//     [Conv2DBackwardWeight], [Conv2DBackwardBias], with [Conv2DParams];
//     [Im2Col] and [Col2Im].
//   - Pooling: [MaxPool2DForward] (with argmax) and [AvgPool2DForward] with
//     [Pool2DParams] and [PoolOutSize]; [GlobalAvgPoolForward],
//     [GlobalMaxPoolForward]; and their backward functions.
//   - Normalization: [BatchNormInference], [BatchNormTrainForward] and their
//     backward functions, with [BatchNormParams].
//   - Rows: [SoftmaxForward], [LogSoftmaxForward], [SoftmaxCrossEntropy]
//     (label smoothing), [ArgmaxRows], [CorrectCount], [Accuracy].
//   - Shapes: [Transpose], [BroadcastShape], [BroadcastTo],
//     [ReduceToShape]; broadcasting [Add], [Sub], [Mul], [Div].
//   - Element-wise: [ReluForward], [LeakyReluForward], [SigmoidForward],
//     [TanhForward], [DropoutMask] and [DropoutForward].
//
// # Parallelism and BLAS
//
// Matrix products go through [Gemm], which dispatches to a [BLAS]
// implementation chosen at build time: gonum's pure-Go blas/gonum by
// default. An implementation backed by OpenBLAS (gonum.org/v1/netlib, cgo)
// can be added as a file with the "openblas" build tag that defines
// defaultBLAS (see blas_gonum.go); the default file is built with !openblas.
//
// Convolution is im2col + GEMM per image; the batch is split across
// runtime.GOMAXPROCS goroutines (on top of the BLAS's own parallelism), and
// large images are unfolded in bands of output rows so that the im2col
// buffer stays within 16 MB (float32) per goroutine. Profiles show the GEMM
// taking about 90% of the time or more, so convolution runs at the speed of
// the BLAS. Pooling and batch norm split their planes or channels across
// goroutines when the work is large enough to pay for it.
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
