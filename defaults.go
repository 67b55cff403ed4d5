// Package toolkit holds what the toolkit ships beside its code: the demo recipe. The
// library lives in the subpackages: onnx (the file format and graph IR), backend (the
// gorgonia program), headbuilder (new heads), dataset (images) and finetune (recipes).
package toolkit

import _ "embed"

// DemoConfig is the repository's config.yaml: fine-tune the shipped Fashion-MNIST base
// (classes 0-4) to classes 5-9 in two stages. Its paths are relative to the repository.
//
//go:embed config.yaml
var DemoConfig []byte
