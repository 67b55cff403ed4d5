// Package models holds what the toolkit knows about architectures: layer-group presets
// for known networks (the torchvision families under the stage names their users know:
// resnet's stem, layer1 ... layer4; mobilenet_v2, efficientnet, regnet, convnext, vit,
// ...; VGG's blocks), matched to a model's parameters by name or by the PyTorch module of
// the nodes that read them (AssignPreset, ParamModuleNames), and, beside it in this
// folder, the demo base model (fmnist-vgg/base.onnx) with the script that trained it.
package models
