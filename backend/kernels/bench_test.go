package kernels

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// VGG19 convolution layers (3x3, pad 1, stride 1) at batch 8.
var vggLayers = []struct {
	name       string
	c, m, h, w int
}{
	{"3to64_32x32", 3, 64, 32, 32},
	{"64to64_32x32", 64, 64, 32, 32},
	{"64to64_56x56", 64, 64, 56, 56},
	{"256to256_28x28", 256, 256, 28, 28},
	{"512to512_14x14", 512, 512, 14, 14},
}

func vggParams(c, m, h, w int) Conv2DParams {
	return Conv2DParams{N: 8, C: c, H: h, W: w, M: m, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}.WithOutSize()
}

func randf32(n int, seed uint64) []float32 {
	rng := newRNG(seed)
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(2*rng.Float64() - 1)
	}
	return s
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchFLOPs runs fn in a b.Loop and reports GFLOP/s of wall time and, since
// benchmarks often share the machine, GFLOP per CPU-second (the throughput
// per busy core, which other processes disturb less).
func benchFLOPs(b *testing.B, flops int64, fn func()) {
	cpu0 := cpuTime()
	for b.Loop() {
		fn()
	}
	cpu := cpuTime() - cpu0
	total := float64(flops) * float64(b.N) / 1e9
	b.ReportMetric(total/b.Elapsed().Seconds(), "GFLOP/s")
	if cpu > 0 {
		b.ReportMetric(total/cpu.Seconds(), "GFLOP/cpu-s")
	}
}

// BenchmarkConv2D measures float32 convolution at VGG19 layer sizes, batch
// 8: forward (with bias), backward data and backward weight. The GFLOP/s
// metric counts 2 FLOPs per multiply-add of the direct convolution.
func BenchmarkConv2D(b *testing.B) {
	for _, l := range vggLayers {
		p := vggParams(l.c, l.m, l.h, l.w)
		x, w, bias, dy := randf32(p.XLen(), 1), randf32(p.WLen(), 2), randf32(p.M, 3), randf32(p.YLen(), 4)
		y, dx, dw := make([]float32, p.YLen()), make([]float32, p.XLen()), make([]float32, p.WLen())
		b.Run(fmt.Sprintf("forward/%s", l.name), func(b *testing.B) {
			benchFLOPs(b, p.FLOPs(), func() { Conv2DForward(p, x, w, bias, y) })
		})
		b.Run(fmt.Sprintf("backwardData/%s", l.name), func(b *testing.B) {
			benchFLOPs(b, p.FLOPs(), func() { Conv2DBackwardData(p, w, dy, dx) })
		})
		b.Run(fmt.Sprintf("backwardWeight/%s", l.name), func(b *testing.B) {
			benchFLOPs(b, p.FLOPs(), func() { Conv2DBackwardWeight(p, x, dy, dw) })
		})
	}
}

// BenchmarkGemm measures the BLAS behind Gemm on the per-image product of
// each VGG layer's forward pass (M × OutH*OutW × C*9).
func BenchmarkGemm(b *testing.B) {
	for _, l := range vggLayers {
		m, n, k := l.m, l.h*l.w, l.c*9
		a, bb, c := randf32(m*k, 1), randf32(k*n, 2), make([]float32, m*n)
		b.Run(fmt.Sprintf("%s/%s_%dx%dx%d", CurrentBLAS().Name(), l.name, m, n, k), func(b *testing.B) {
			benchFLOPs(b, int64(2*m*n*k), func() { Gemm(false, false, m, n, k, 1, a, k, bb, n, 0, c, n) })
		})
	}
}

// BenchmarkMaxPool2D measures VGG's 2×2 pooling and ResNet's 3×3 stride-2 stem pooling
// at 112 px, batch 8: the forward pass with and without positions, and the backward.
func BenchmarkMaxPool2D(b *testing.B) {
	for _, q := range []Pool2DParams{
		{N: 8, C: 64, H: 112, W: 112, KH: 2, KW: 2, StrideH: 2, StrideW: 2},
		{N: 8, C: 64, H: 112, W: 112, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
	} {
		p := q.WithOutSize(false)
		x, y, arg := randf32(p.XLen(), 1), make([]float32, p.YLen()), make([]int32, p.YLen())
		dx := make([]float32, p.XLen())
		b.Run(fmt.Sprintf("%dx%d/forward", p.KH, p.KW), func(b *testing.B) {
			for b.Loop() {
				MaxPool2DForward(p, x, y, nil)
			}
		})
		b.Run(fmt.Sprintf("%dx%d/forward-positions", p.KH, p.KW), func(b *testing.B) {
			for b.Loop() {
				MaxPool2DForward(p, x, y, arg)
			}
		})
		b.Run(fmt.Sprintf("%dx%d/backward", p.KH, p.KW), func(b *testing.B) {
			for b.Loop() {
				MaxPool2DBackward(p, x, y, dx)
			}
		})
	}
}

func BenchmarkBatchNormTrain(b *testing.B) {
	p := BatchNormParams{N: 8, C: 64, HW: 56 * 56, Epsilon: 1e-5, Momentum: 0.9}
	x, dy := randf32(p.XLen(), 1), randf32(p.XLen(), 2)
	scale, bias := randf32(p.C, 3), randf32(p.C, 4)
	y, dx := make([]float32, p.XLen()), make([]float32, p.XLen())
	mean, inv, rm, rv := make([]float32, p.C), make([]float32, p.C), make([]float32, p.C), make([]float32, p.C)
	b.Run("forward", func(b *testing.B) {
		for b.Loop() {
			BatchNormTrainForward(p, x, scale, bias, y, mean, inv, rm, rv)
		}
	})
	b.Run("backwardData", func(b *testing.B) {
		for b.Loop() {
			BatchNormTrainBackwardData(p, x, scale, mean, inv, dy, dx)
		}
	})
}

// BenchmarkConv2DVGG224 measures the forward pass of each distinct VGG19
// convolution at 224×224, batch 1 (the `toolkit run` workload); GFLOP/s as
// in BenchmarkConv2D.
func BenchmarkConv2DVGG224(b *testing.B) {
	for _, l := range []struct{ c, m, h int }{{3, 64, 224}, {64, 64, 224}, {64, 128, 112}, {128, 128, 112}, {128, 256, 56}, {256, 256, 56}, {256, 512, 28}, {512, 512, 28}, {512, 512, 14}} {
		p := Conv2DParams{N: 1, C: l.c, H: l.h, W: l.h, M: l.m, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}.WithOutSize()
		x, w, bias := randf32(p.XLen(), 1), randf32(p.WLen(), 2), randf32(p.M, 3)
		y := make([]float32, p.YLen())
		b.Run(fmt.Sprintf("%dto%d_%dx%d", l.c, l.m, l.h, l.h), func(b *testing.B) {
			benchFLOPs(b, p.FLOPs(), func() { Conv2DForward(p, x, w, bias, y) })
		})
	}
}

// BenchmarkMicroKernel measures each GEMM micro-kernel alone on panels
// that stay in the L1 cache (its kc): the ceiling for everything above it.
// BenchmarkMicroKernel measures each micro-kernel on panels in L1 (the bfloat16 one
// too, where the CPU has it: 2 FLOPs per multiply-add of its bfloat16 pairs).
func BenchmarkMicroKernel(b *testing.B) {
	kerns := allKernels()
	if k := bf16Kernel(); k != nil {
		kerns = append(kerns, k)
	}
	for _, kern := range kerns {
		kc, mr, nr := kern.kc, kern.mr, kern.nr
		a, bb := randf32(kc*mr, 1), randf32(kc*nr, 2)
		c := make([]float32, mr*nr)
		b.Run(kern.name, func(b *testing.B) {
			benchFLOPs(b, int64(2*kc*mr*nr), func() { kern.tile(kc, a, bb, c, nr, 1, 0, nil, mr, uint32(1)<<nr-1, 0, 0, 0) })
		})
	}
}

// vgg19At32 lists the distinct convolutions of VGG19 at 32×32 input (how
// many times each occurs), the training workload of BENCHMARKS.md.
var vgg19At32 = []struct{ c, m, h, times int }{
	{3, 64, 32, 1}, {64, 64, 32, 1}, {64, 128, 16, 1}, {128, 128, 16, 1},
	{128, 256, 8, 1}, {256, 256, 8, 3}, {256, 512, 4, 1}, {512, 512, 4, 3}, {512, 512, 2, 4},
}

// BenchmarkConv2DVGG19Train measures the three passes of each distinct
// VGG19 convolution at 32×32, batch 16 (GFLOP/s as in BenchmarkConv2D).
func BenchmarkConv2DVGG19Train(b *testing.B) {
	for _, l := range vgg19At32 {
		p := Conv2DParams{N: 16, C: l.c, H: l.h, W: l.h, M: l.m, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}.WithOutSize()
		x, w, bias, dy := randf32(p.XLen(), 1), randf32(p.WLen(), 2), randf32(p.M, 3), randf32(p.YLen(), 4)
		y, dx, dw := make([]float32, p.YLen()), make([]float32, p.XLen()), make([]float32, p.WLen())
		name := fmt.Sprintf("%dto%d_%dx%d", l.c, l.m, l.h, l.h)
		b.Run("forward/"+name, func(b *testing.B) {
			benchFLOPs(b, p.FLOPs(), func() { Conv2DForward(p, x, w, bias, y) })
		})
		b.Run("backwardData/"+name, func(b *testing.B) {
			benchFLOPs(b, p.FLOPs(), func() { Conv2DBackwardData(p, w, dy, dx) })
		})
		b.Run("backwardWeight/"+name, func(b *testing.B) {
			benchFLOPs(b, p.FLOPs(), func() { Conv2DBackwardWeight(p, x, dy, dw) })
		})
	}
}

// BenchmarkConv2DBackwardDataShapes covers both ways of the data gradient
// (the flipped convolution and wᵀ·dy with col2im) on either side of
// flipPays: small maps with many filters, large maps, 5×5 and 1×1 filters, and
// ResNet-50's strided layers (k negative in the table: stride 2).
func BenchmarkConv2DBackwardDataShapes(b *testing.B) {
	for _, l := range []struct{ n, c, m, h, k int }{
		{16, 512, 512, 2, 3}, {16, 512, 512, 4, 3}, {16, 256, 256, 8, 3}, {8, 512, 512, 7, 3}, {8, 256, 256, 14, 3},
		{8, 64, 64, 28, 5}, {8, 192, 192, 14, 5}, {8, 256, 1024, 14, 1}, {8, 512, 2048, 7, 1}, {16, 64, 64, 32, 1}, {8, 32, 32, 56, 3},
		// ResNet-50's strided layers at batch 16 (stride 2, no flipped form).
		{16, 128, 128, 56, -3}, {16, 256, 256, 28, -3}, {16, 256, 512, 56, -1}, {16, 1024, 2048, 14, -1},
	} {
		stride := 1
		if l.k < 0 {
			l.k, stride = -l.k, 2
		}
		pad := l.k / 2
		p := Conv2DParams{N: l.n, C: l.c, H: l.h, W: l.h, M: l.m, KH: l.k, KW: l.k, StrideH: stride, StrideW: stride, PadTop: pad, PadLeft: pad, PadBottom: pad, PadRight: pad}.WithOutSize()
		w, dy, dx := randf32(p.WLen(), 2), randf32(p.YLen(), 4), make([]float32, p.XLen())
		b.Run(fmt.Sprintf("%dto%d_%dx%d_k%d_s%d", l.c, l.m, l.h, l.h, l.k, stride), func(b *testing.B) {
			benchFLOPs(b, p.FLOPs(), func() { Conv2DBackwardData(p, w, dy, dx) })
		})
	}
}

// BenchmarkConv2DWinogradOrDirect measures ResNet's 3×3 convolutions at 224 px (stride
// 1) at batch 1 and 16 both ways, F(2×2, 3×3) with its filters cached (an inference's
// frozen weights) and the direct path of conv_fast.go: what winogradOn's bounds rest on.
func BenchmarkConv2DWinogradOrDirect(b *testing.B) {
	kern := packedKernel[float32]()
	if kern == nil || kern.wino == nil {
		b.Skip("no Winograd transforms on this implementation")
	}
	for _, n := range []int{1, 16} {
		for _, l := range []struct{ c, h int }{{64, 56}, {128, 28}, {256, 14}, {512, 7}} {
			p := Conv2DParams{N: n, C: l.c, H: l.h, W: l.h, M: l.c, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}.WithOutSize().norm()
			x, w, bias := randf32(p.XLen(), 1), randf32(p.WLen(), 2), randf32(p.M, 3)
			y := make([]float32, p.YLen())
			var cache FilterCache
			b.Run(fmt.Sprintf("winograd/n%d/%dx%d_%d", n, l.h, l.h, l.c), func(b *testing.B) {
				benchFLOPs(b, p.FLOPs(), func() {
					convForwardWinograd(kern, p, x, winoWeights(p.C, w), bias, y, Activation{Kind: ReluActivation}, filterUse{cache: &cache})
				})
			})
			// Trained weights: the filters transformed at every call.
			b.Run(fmt.Sprintf("winograd-trained/n%d/%dx%d_%d", n, l.h, l.h, l.c), func(b *testing.B) {
				benchFLOPs(b, p.FLOPs(), func() {
					convForwardWinograd(kern, p, x, winoWeights(p.C, w), bias, y, Activation{Kind: ReluActivation}, filterUse{})
				})
			})
			b.Run(fmt.Sprintf("direct/n%d/%dx%d_%d", n, l.h, l.h, l.c), func(b *testing.B) {
				benchFLOPs(b, p.FLOPs(), func() {
					convForwardFast(kern, p, x, dense(w, p.C*9, false), nil, bias, y, Activation{Kind: ReluActivation})
				})
			})
		}
	}
}

// BenchmarkConv2DBF16WinogradOrDirect measures ResNet's 3×3 convolutions at 224 px
// (stride 1), batch 16, on the bfloat16 kernel's direct path against F(2×2, 3×3) on
// the float32 kernel that has the transforms: which one a bfloat16 run's 3×3
// convolutions take (winogradKernel).
func BenchmarkConv2DBF16WinogradOrDirect(b *testing.B) {
	bf := bf16Kernel()
	var wk *gemmKernel
	for _, k := range asmKernels() {
		if k.wino != nil {
			wk = k
			break
		}
	}
	if bf == nil || wk == nil {
		b.Skip("no bfloat16 kernel or no Winograd transforms on this CPU")
	}
	for _, l := range []struct{ c, h int }{{64, 56}, {128, 28}, {256, 14}, {512, 7}} {
		p := Conv2DParams{N: 16, C: l.c, H: l.h, W: l.h, M: l.c, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}.WithOutSize().norm()
		x, w, bias := randf32(p.XLen(), 1), randf32(p.WLen(), 2), randf32(p.M, 3)
		y := make([]float32, p.YLen())
		b.Run(fmt.Sprintf("winograd-float32/%dx%d_%d", l.h, l.h, l.c), func(b *testing.B) {
			benchFLOPs(b, p.FLOPs(), func() {
				convForwardWinograd(wk, p, x, winoWeights(p.C, w), bias, y, Activation{Kind: ReluActivation}, filterUse{})
			})
		})
		b.Run(fmt.Sprintf("direct-bfloat16/%dx%d_%d", l.h, l.h, l.c), func(b *testing.B) {
			benchFLOPs(b, p.FLOPs(), func() {
				convForwardFast(bf, p, x, dense(w, p.C*9, false), nil, bias, y, Activation{Kind: ReluActivation})
			})
		})
	}
}

// BenchmarkConv2DResNet1x1 measures ResNet-50's 1×1 convolutions (stride 1) at 224 px,
// batch 16: forward, data and weight gradients.
func BenchmarkConv2DResNet1x1(b *testing.B) {
	for _, l := range []struct{ c, m, h int }{{256, 64, 56}, {64, 256, 56}, {512, 128, 28}, {128, 512, 28}, {1024, 256, 14}, {256, 1024, 14}, {2048, 512, 7}, {512, 2048, 7}} {
		p := Conv2DParams{N: 16, C: l.c, H: l.h, W: l.h, M: l.m, KH: 1, KW: 1}.WithOutSize()
		x, w, dy := randf32(p.XLen(), 1), randf32(p.WLen(), 2), randf32(p.YLen(), 4)
		y, dx, dw := make([]float32, p.YLen()), make([]float32, p.XLen()), make([]float32, p.WLen())
		name := fmt.Sprintf("%dto%d_%dx%d", l.c, l.m, l.h, l.h)
		b.Run("forward/"+name, func(b *testing.B) {
			benchFLOPs(b, p.FLOPs(), func() { Conv2DForward(p, x, w, nil, y) })
		})
		b.Run("backwardData/"+name, func(b *testing.B) {
			benchFLOPs(b, p.FLOPs(), func() { Conv2DBackwardData(p, w, dy, dx) })
		})
		b.Run("backwardWeight/"+name, func(b *testing.B) {
			benchFLOPs(b, p.FLOPs(), func() { Conv2DBackwardWeight(p, x, dy, dw) })
		})
	}
}

// BenchmarkConv2DMobileNetV2Batch1 measures MobileNet-V2's convolutions at 224 px,
// batch 1, as an inference program runs them (constant weights, ReLU6 stored by the
// products where the network has one): the stem, each stage's first expansion,
// depthwise and projection, the last 1x1.
func BenchmarkConv2DMobileNetV2Batch1(b *testing.B) {
	relu6 := Activation{Kind: ClipActivation, Lo: 0, Hi: 6}
	type layer struct {
		name               string
		c, m, h, k, stride int
		group              int
		act                Activation
	}
	layers := []layer{
		{"stem3to32_224s2", 3, 32, 224, 3, 2, 1, relu6},
		{"dw32_112", 32, 32, 112, 3, 1, 32, relu6},
		{"pw32to16_112", 32, 16, 112, 1, 1, 1, Activation{}},
		{"pw16to96_112", 16, 96, 112, 1, 1, 1, relu6},
		{"dw96_112s2", 96, 96, 112, 3, 2, 96, relu6},
		{"pw96to24_56", 96, 24, 56, 1, 1, 1, Activation{}},
		{"pw24to144_56", 24, 144, 56, 1, 1, 1, relu6},
		{"dw144_56", 144, 144, 56, 3, 1, 144, relu6},
		{"pw144to24_56", 144, 24, 56, 1, 1, 1, Activation{}},
		{"pw32to192_28", 32, 192, 28, 1, 1, 1, relu6},
		{"dw192_28", 192, 192, 28, 3, 1, 192, relu6},
		{"pw192to32_28", 192, 32, 28, 1, 1, 1, Activation{}},
		{"pw64to384_14", 64, 384, 14, 1, 1, 1, relu6},
		{"dw384_14", 384, 384, 14, 3, 1, 384, relu6},
		{"pw384to64_14", 384, 64, 14, 1, 1, 1, Activation{}},
		{"pw160to960_7", 160, 960, 7, 1, 1, 1, relu6},
		{"dw960_7", 960, 960, 7, 3, 1, 960, relu6},
		{"pw960to160_7", 960, 160, 7, 1, 1, 1, Activation{}},
		{"pw320to1280_7", 320, 1280, 7, 1, 1, 1, relu6},
	}
	for _, l := range layers {
		pad := l.k / 2
		p := Conv2DParams{N: 1, C: l.c, H: l.h, W: l.h, M: l.m, KH: l.k, KW: l.k, StrideH: l.stride, StrideW: l.stride,
			PadTop: pad, PadLeft: pad, PadBottom: pad, PadRight: pad, Group: l.group}.WithOutSize()
		benchConstantConv(b, l.name, p, l.act)
	}
}

// benchConstantConv measures p's forward pass as an inference program runs it:
// constant weights (a FilterCache the calls share) and act stored by the products.
func benchConstantConv(b *testing.B, name string, p Conv2DParams, act Activation) {
	x, w, bias, y := randf32(p.XLen(), 1), randf32(p.WLen(), 2), randf32(p.M, 3), make([]float32, p.YLen())
	var cache FilterCache
	b.Run(name, func(b *testing.B) {
		benchFLOPs(b, p.FLOPs(), func() { Conv2DForwardConstant(&cache, p, x, w, bias, y, act) })
	})
}

// BenchmarkConv2DStridedBatch1 measures strided convolutions at batch 1 as an
// inference program runs them (constant weights, a Relu stored): ResNet-50's 7×7
// stem and a 3×3 stride-2 layer, MobileNet-V2's stem.
func BenchmarkConv2DStridedBatch1(b *testing.B) {
	for _, l := range []struct {
		name            string
		c, m, h, k, pad int
	}{
		{"resnet_stem7x7_3to64_224", 3, 64, 224, 7, 3},
		{"resnet_3x3s2_256_28", 256, 256, 28, 3, 1},
		{"resnet_3x3s2_128_56", 128, 128, 56, 3, 1},
		{"mobilenet_stem3x3_3to32_224", 3, 32, 224, 3, 1},
	} {
		p := Conv2DParams{N: 1, C: l.c, H: l.h, W: l.h, M: l.m, KH: l.k, KW: l.k, StrideH: 2, StrideW: 2,
			PadTop: l.pad, PadLeft: l.pad, PadBottom: l.pad, PadRight: l.pad}.WithOutSize()
		benchConstantConv(b, l.name, p, Activation{Kind: ReluActivation})
	}
}

// BenchmarkConv2DResNetBatch1 measures ResNet-50's stride-1 convolutions on its
// smallest maps at batch 1, as an inference program runs them (constant weights, a Relu
// stored): the 3×3 and 1×1 layers of its last two stages, where a product has 49 or 196
// columns.
func BenchmarkConv2DResNetBatch1(b *testing.B) {
	for _, l := range []struct {
		name       string
		c, m, h, k int
	}{
		{"3x3_512_7", 512, 512, 7, 3},
		{"1x1_2048to512_7", 2048, 512, 7, 1},
		{"1x1_512to2048_7", 512, 2048, 7, 1},
		{"3x3_256_14", 256, 256, 14, 3},
		{"1x1_1024to256_14", 1024, 256, 14, 1},
		{"1x1_256to1024_14", 256, 1024, 14, 1},
	} {
		pad := l.k / 2
		p := Conv2DParams{N: 1, C: l.c, H: l.h, W: l.h, M: l.m, KH: l.k, KW: l.k,
			PadTop: pad, PadLeft: pad, PadBottom: pad, PadRight: pad}.WithOutSize()
		benchConstantConv(b, l.name, p, Activation{Kind: ReluActivation})
	}
}

// BenchmarkSoftmax times an attention layer's softmax: ViT-B/16's at batch 16, 16·12·197
// rows of 197.
func BenchmarkSoftmax(b *testing.B) {
	rows, cols := 16*12*197, 197
	rng := newRNG(1)
	x := to32(randn(rng, rows*cols))
	y := make([]float32, len(x))
	dy := to32(randn(rng, rows*cols))
	b.Run("forward", func(b *testing.B) {
		for range b.N {
			SoftmaxForward(rows, cols, x, y)
		}
	})
	b.Run("backward", func(b *testing.B) {
		for range b.N {
			SoftmaxBackward(rows, cols, y, dy, x)
		}
	})
}

// BenchmarkConv2DGroups times a grouped 3×3 layer by the taps' loop (depthwiseForward)
// and as a product per image and group, over channels per group and map sizes: the
// measurements behind byTaps.
func BenchmarkConv2DGroups(b *testing.B) {
	for _, cg := range []int{8, 16, 24, 32, 64} {
		for _, hw := range []int{56, 28, 14, 7} {
			c := 8 * cg
			if hw == 56 {
				c = 2 * cg
			}
			p := Conv2DParams{N: 1, C: c, H: hw, W: hw, M: c, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Group: c / cg}.WithOutSize().norm()
			rng := newRNG(1)
			x, w, bias := to32(randn(rng, p.XLen())), to32(randn(rng, p.WLen())), to32(randn(rng, p.M))
			y := make([]float32, p.YLen())
			b.Run(fmt.Sprintf("cg%d_hw%d_taps", cg, hw), func(b *testing.B) {
				for range b.N {
					depthwiseForward(p, x, w, bias, y, Activation{})
				}
				b.ReportMetric(float64(p.FLOPs())*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
			b.Run(fmt.Sprintf("cg%d_hw%d_prod", cg, hw), func(b *testing.B) {
				q := p.groupParams()
				for range b.N {
					p.forGroups(func(n, g, xo, wo, yo, bo int) {
						Conv2DForwardAct(q, x[xo:xo+q.XLen()], w[wo:wo+q.WLen()], bias[bo:bo+q.M], y[yo:yo+q.YLen()], Activation{})
					})
				}
				b.ReportMetric(float64(p.FLOPs())*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
