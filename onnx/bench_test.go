package onnx

import (
	"os"
	"testing"
)

// BenchmarkReadVGG19 reads the model file named by TOOLKIT_VGG19, for example a
// torchvision VGG19 export (see the package tests for the command).
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
