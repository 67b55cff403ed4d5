//go:build mpi

package distrib

import (
	"testing"
)

// BenchmarkAllreduce times one in-place allreduce of a fused float32 gradient buffer of
// the size of a model's trainable parameters, as a data-parallel step runs it. Run it
// under mpirun with a fixed count, which every rank must share:
//
//	go test -tags mpi -c -o distrib.test ./distrib
//	mpirun ... -np 2 ./distrib.test -test.run XXX -test.bench Allreduce -test.benchtime 10x
func BenchmarkAllreduce(b *testing.B) {
	if LaunchedRanks() == 0 {
		b.Skip("not started by mpirun")
	}
	c, err := Open()
	if err != nil {
		b.Fatal(err)
	}
	for _, m := range []struct {
		name   string
		params int
	}{
		{"VGG19-features", 20_024_384}, // torchvision's vgg19().features
		{"VGG19-all", 143_667_240},     // with the classifier, every layer trained
		{"ResNet-50", 23_508_032},      // torchvision's resnet50() without fc
	} {
		buf := make([]float32, m.params)
		for i := range buf {
			buf[i] = float32(i%13) * 1e-3
		}
		b.Run(m.name, func(b *testing.B) {
			b.SetBytes(int64(4 * m.params))
			for range b.N {
				if err := c.AllreduceFloat32(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
