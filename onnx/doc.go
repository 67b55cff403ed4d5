// Package onnx owns the toolkit's view of the ONNX file format: the graph IR that every
// other package works on, and everything that can be done to a model without running it.
//
//   - Reading and writing: Read and Decode turn an .onnx file (external data included)
//     into a validated, topologically ordered Model; Write and Encode turn it back into
//     a file any ONNX runtime accepts. ReadTensor and DecodeTensor read a single
//     serialized TensorProto (the input_N.pb files of the ONNX node tests).
//   - The IR (ir.go): Model, Graph, Node, Attribute, Tensor, ValueInfo. Floating-point
//     tensors are always float32 in memory; integer and bool tensors are int64.
//   - Lookups: Model.Opset, Graph.Initializer, Graph.RealInputs, Graph.Producer,
//     Graph.Consumers, Node.Attr and the typed attribute getters.
//   - The op table (optable.go): one OpSchema per ai.onnx operator the toolkit knows,
//     defined in the file of its family (ops_elementwise.go, ops_shape.go, ops_conv.go,
//     ...): the opsets at which its definition changed, its shape rule, which inputs a
//     gradient flows through, and how UpgradeOpset rewrites it. Schema and SchemaOf look
//     entries up; the backend registers its kernels against them (see below).
//   - Shape inference with constant folding (InferShapes, driven by the schemas' rules)
//     and the convolution and pooling geometry the backend needs (ConvWindow,
//     PoolWindow).
//   - Surgery: Cut at a node or tensor; FindHead and HeadlessCut to find where the
//     classifier starts (before the final pooling, or after a transformer's class
//     token) and how it pools; IsHeadless; Blocks to split a base into layer groups at
//     its stage boundaries, where the spatial resolution halves (ModulePath reads the
//     PyTorch module of a node from its scoped name).
//   - Summaries: Summarize and Summary.WriteText, the layer table of `toolkit import`.
//   - Rewrites that return a new model: UntieInitializers gives every parameter its own
//     initializer where PyTorch's exporter aliased bit-identical ones with Identity
//     nodes; UpgradeOpset rewrites a model of ai.onnx opset 7 to 16 to opset 13 to 17
//     (attributes that became inputs, Softmax's new axis semantics, BatchNormalization's
//     inference form), so that what the toolkit writes runs in current runtimes.
//
// Why the op table lives here: what an operator means (its shapes, its opset history,
// which inputs the specification calls differentiable) is a fact of the file format, so
// shape inference, cutting and summaries work with this package alone; how an operator
// is computed is the backend's. Package backend has one file per family as well
// (backend/ops_shape.go beside onnx/ops_shape.go), whose entries carry the onnx schema
// with the kernels: together the two files of a family hold everything known about its
// operators. TestSchemasAgainstSpec checks the schemas against onnx.defs.
//
// The protobuf message types live in the subpackage onnxpb and never leave this
// package. This package knows nothing of gorgonia, YAML or training, and imports no
// other toolkit package.
package onnx
