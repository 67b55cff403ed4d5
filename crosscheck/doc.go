// Package crosscheck holds tests, and nothing else, that compare the toolkit against
// implementations it shares no code with:
//
//   - ONNX Runtime (onnxruntime-node, CPU), through the runner in tools/ort: every
//     PyTorch parity fixture run by the backend and by ONNX Runtime, at the fixture's
//     batch and at batch sizes 1, 3 and 7; fixtures rewritten by onnx.Write and
//     backend.Model.Export give ONNX Runtime the same outputs as the original files;
//     heads appended by headbuilder onto the fixtures' convolutional bases, fine-tuned
//     for a few steps and exported, serve in ONNX Runtime with the backend's logits;
//     the features toolkit extract writes (package extract) are ONNX Runtime's on the
//     same inputs, from a recipe's base file and from a classifier cut at its head.
//   - onnx-go v0.5.0 with its gorgonia backend (gorgonnx): every parity fixture and
//     every ONNX backend node test (Debian's libonnx-testdata) whose operators both
//     implement, decoded and run by onnx-go and by the toolkit. The cases onnx-go
//     cannot run are listed with the reason, and the list is checked.
//
// Outputs are compared by max|ours - theirs| / max|theirs|, within 1e-5.
//
// The ONNX Runtime tests need Node.js and `npm ci --prefix tools/ort --ignore-scripts`
// (run from the repository root); without them they are skipped, or fail when the
// environment variable CI is set.
package crosscheck
