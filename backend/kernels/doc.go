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
// activations do). Temporary buffers (im2col columns, packed GEMM panels,
// gathered gradients) come from the package's scratch free lists; nothing
// else is allocated in the hot loops, and the free lists are the only global
// mutable state.
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
//   - One-input functions (unary.go): [UnaryForward] and [UnaryBackward] for each [UnaryOp] (Exp ... Gelu, HardSwish, Clip).
//   - Broadcasting Pow and PRelu (binary.go): [PowForward], [PReluForward] and their backward functions.
//   - Reductions (reduce.go): [ReduceSum], [ReduceMean], [ReduceMax] over axes, and their backward functions.
//   - Selection (slice.go): [SliceForward] with [SliceParams], [TileForward], and their backward functions.
//   - Layer normalization (layernorm.go): [LayerNormForward] and its backward functions.
//
// # Parallelism and BLAS
//
// Matrix products go through [Gemm], which dispatches to a [BLAS]
// implementation chosen at build time (see [CurrentBLAS]):
//
//   - default: the package's own float32 GEMM ("go-avx2", gemm.go): packed
//     panels in the BLIS/GotoBLAS arrangement and a 6×16 micro-kernel in Go
//     assembly (AVX2 and FMA, detected at run time), about 80-90 GFLOP/s
//     per core of a Zen 3 EPYC, where gonum's Sgemm reaches 3-9. No cgo.
//     Where the CPU lacks AVX2 or FMA it falls back to gonum.
//   - -tags openblas: OpenBLAS through cgo (internal/openblas, linked with
//     -lopenblas; Debian's libopenblas-dev).
//   - -tags purego: gonum's pure-Go BLAS, and no assembly of ours.
//
// float64 products (finite-difference checks only) use gonum, or OpenBLAS
// under the openblas tag.
//
// There is one layer of parallelism, in Go: every product is split across
// GOMAXPROCS goroutines (blocks of columns or rows of C, handed out
// dynamically, with the operand they share packed once), and OpenBLAS is
// set to one thread, so that nothing oversubscribes the cores. A
// convolution runs its steps one after another, each on every core:
// im2col split by channels, the product by [Gemm], col2im by channels.
// Small images are unfolded several at a time, side by side in one column
// matrix, so that the products are wide (VGG19's 2×2 maps at 32×32 input
// would otherwise be 4 columns wide); large images are unfolded in bands
// of output rows so that the im2col buffer stays near 4 MB (but at least
// 1024 columns per band). On the default GEMM, float32 convolutions also
// add their bias in the micro-kernel and pack the weight gradient's image
// operand straight from the images (conv_packed.go).
//
// Pooling, batch norm and Relu split their planes, channels or elements
// across goroutines when the work is large enough to pay for it. Scratch
// buffers come from free lists by size class that the garbage collector
// does not empty (float.go).
//
// Profiles of VGG19 (BENCHMARKS.md at the repository root) show the GEMM
// micro-kernel taking 60-75% of the time, then packing, im2col and col2im.
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
