// Package models holds what the toolkit knows about architectures: layer-group presets
// for known networks, and, beside it in this folder, the demo base model
// (fmnist-vgg/base.onnx) with the script that trained it.
package models
