package onnx

import (
	"os"
	"testing"
)

// BenchmarkReadVGG19 reads the model file named by TOOLKIT_VGG19 and skips when it is
// unset. Make one (80 MB; drop ".features" for the 575 MB full network) with
//
//	/usr/bin/python3 -c "import torch,torchvision; m=torchvision.models.vgg19().features.eval(); torch.onnx.export(m, torch.randn(1,3,224,224), '/tmp/vgg19-features.onnx', opset_version=13, input_names=['input'], output_names=['features'], dynamic_axes={'input':{0:'N'},'features':{0:'N'}})"
//	TOOLKIT_VGG19=/tmp/vgg19-features.onnx go test -run XXX -bench ReadVGG19 ./onnx/
func BenchmarkReadVGG19(b *testing.B) {
	path := os.Getenv("TOOLKIT_VGG19")
	if path == "" {
		b.Skip("TOOLKIT_VGG19 is not set")
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(fi.Size())
	for b.Loop() {
		m, err := Read(path)
		if err != nil {
			b.Fatal(err)
		}
		if len(m.Graph.Initializers) == 0 {
			b.Fatal("no initializers")
		}
	}
}
