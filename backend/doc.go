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
// A program runs its ops in the tape's order, except the weight gradients of
// convolutions whose weights no other op reads: those run on a goroutine beside the rest
// of the backward pass (async.go), and a run returns only when they are done.
package backend
