// Package backend turns an ONNX graph (package toolkit/onnx) into a trainable program on
// gorgonia.
//
// Every ONNX op the toolkit supports is a gorgonia Op whose forward and backward passes
// are plain kernels from toolkit/backend/kernels; each op family lives in one file and
// registers itself in the op table, the way image formats register decoders. An entry
// of the table is the op's onnx.OpSchema (its shape inference, which inputs are
// differentiable, its opset history: package onnx owns those, in its file of the same
// family, onnx/ops_<family>.go) with the constructors of its kernels; an op without a
// schema cannot be registered. CheckSupported refuses a model naming every node whose
// op has no entry.
// Parameters are float32 tensors keyed by their ONNX initializer names, so the training
// code can address them by the names users see in `toolkit import`.
//
// A Program is the graph built for one batch size and one set of trainable parameters:
// gradients are built only for those parameters, so frozen layers below the lowest
// trained one cost no backward work. Programs run in inference mode (Dropout is the
// identity, BatchNormalization uses running statistics) or training mode (inverted
// dropout from a seeded generator, batch statistics with running-average updates).
//
// gorgonia holds a program's graph: the nodes, their types and shapes, and the backward
// nodes gorgonia.Grad derives from each op's SymDiff. The toolkit runs that graph with
// its own executor (exec.go) instead of a gorgonia TapeMachine, which keeps every node's
// value for the whole run (a ResNet-50 training step at 224 px needed twice PyTorch's
// memory). The executor runs the nodes in the order they were made (the ONNX graph's,
// then gorgonia.Grad's reverse pass), and its values live in one arena planned when the
// program is built (plan.go): a value takes its place from the step that writes it to
// the last step that reads it; a backward pass reads only the forward values its kernel
// declares (a Relu its output, a convolution its input and weights, a max pooling its
// input, where it finds the maxima again), so the others go after the forward pass;
// what a kernel keeps from its forward pass beside its inputs and output (a dropout
// mask) is planned like a value; element-wise ops write over an input nothing reads
// afterwards; the output of a Gelu or a SiLU is computed again for the backward pass
// from the input its derivative keeps anyway (rematerialize). A Conv and the Relu or
// ReLU6 Clip after it, a BatchNormalization and the Relu, ReLU6 Clip or SiLU after it
// (outside constant-weight programs for the SiLU), x·σ(x) (SiLU) and Gelu
// written out in five nodes are each built as one op (planFusions). With
// Options.SavedBF16 (finetune's precision bf16) the values the backward pass reads only
// rounded (a product's factor, which the bfloat16 products round anyway, or a Relu's
// output, read for its mask) are copied to bfloat16 after their last forward reader and
// read back before their first gradient, where that makes the arena smaller
// (compactSaved); with Options.NormBF16 too a training BatchNormalization's input,
// whose copy the normalization writes as it reads it and its gradients read rounded. A forward-only program with constant weights
// (Options.ConstantWeights: predict, evaluate) also folds
// each inference-mode BatchNormalization into the convolution before it, and keeps
// what the kernels derive from its weights without checking them at every run. The
// float32 programs of a model share one
// arena, as large as the largest plan (they run one at a time), mapped from the system
// rather than allocated on the Go heap (arena.go). The outputs stay in the arena until
// the end of the run (valid until the next run of a program of the model); the loss
// and the gradients have buffers of their own, a parameter's gradient one that the
// model's programs share. Tensors a caller looks at without keeping them (finetune's
// ReLU probes) are told to a callback as a run computes them (Options.Probes,
// Program.Probe); Program.Trace tells every step's time, and Program.Memory the plan.
//
// The weight gradients of convolutions whose weights no other op reads run on a
// kernels worker beside the rest of the backward pass (async.go, kernels.Go) until the next such gradient
// waits for them, or a step planned to wait where their running on would hold memory at
// the arena's peak (their arguments are planned to live until then), and a run returns
// only when they are done.
package backend
