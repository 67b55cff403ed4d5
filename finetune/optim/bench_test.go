package optim

import (
	"testing"
)

// vgg19Base returns the parameters of VGG19's convolutional base (20,024,384 values:
// 16 conv layers, weight and bias each) with small made-up values and gradients.
func vgg19Base() []Param {
	channels := [][2]int{
		{3, 64}, {64, 64},
		{64, 128}, {128, 128},
		{128, 256}, {256, 256}, {256, 256}, {256, 256},
		{256, 512}, {512, 512}, {512, 512}, {512, 512},
		{512, 512}, {512, 512}, {512, 512}, {512, 512},
	}
	var ps []Param
	for i, c := range channels {
		for _, n := range []int{c[0] * c[1] * 9, c[1]} {
			v, g := make([]float32, n), make([]float32, n)
			for j := range v {
				v[j] = float32(j%1000-500) * 1e-4
				g[j] = float32(j%777-388) * 1e-5
			}
			name := "features." + string(rune('a'+i))
			if n == c[1] {
				name += ".bias"
			} else {
				name += ".weight"
			}
			ps = append(ps, Param{Name: name, Value: v, Grad: g})
		}
	}
	return ps
}

func count(ps []Param) int {
	n := 0
	for _, p := range ps {
		n += len(p.Value)
	}
	return n
}

func benchStep(b *testing.B, opt Optimizer, serial bool) {
	ps := vgg19Base()
	n := count(ps)
	if n != 20024384 {
		b.Fatalf("VGG19 base has %d parameters, want 20024384", n)
	}
	if serial {
		s := serialBelow
		serialBelow = 1 << 62
		defer func() { serialBelow = s }()
	}
	if err := opt.Step(ps, 1e-4); err != nil { // allocate the state outside the timing
		b.Fatal(err)
	}
	b.SetBytes(int64(n) * 4)
	b.ResetTimer()
	cpu := cpuNanos()
	for b.Loop() {
		if err := opt.Step(ps, 1e-4); err != nil {
			b.Fatal(err)
		}
	}
	report(b, n, cpuNanos()-cpu)
}

// report adds wall and CPU nanoseconds per parameter (CPU time sums over threads).
func report(b *testing.B, n int, cpu int64) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/param")
	b.ReportMetric(float64(cpu)/float64(b.N)/float64(n), "cpu-ns/param")
}

func BenchmarkAdamStepVGG19(b *testing.B) {
	o, _ := NewAdam(DefaultAdam())
	benchStep(b, o, false)
}

func BenchmarkAdamStepVGG19Serial(b *testing.B) {
	o, _ := NewAdam(DefaultAdam())
	benchStep(b, o, true)
}

func BenchmarkAdamWStepVGG19(b *testing.B) {
	o, _ := NewAdamW(DefaultAdamW())
	benchStep(b, o, false)
}

func BenchmarkSGDNesterovStepVGG19(b *testing.B) {
	o, _ := NewSGD(SGDConfig{Momentum: 0.9, Nesterov: true, WeightDecay: 1e-4})
	benchStep(b, o, false)
}

func BenchmarkClipGradNormVGG19(b *testing.B) {
	ps := vgg19Base()
	n := count(ps)
	b.SetBytes(int64(n) * 4)
	cpu := cpuNanos()
	for b.Loop() {
		ClipGradNorm(ps, 1e9) // measures the norm; nothing to scale
	}
	report(b, n, cpuNanos()-cpu)
}
