package dataset

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"testing"
)

// TestMixupAndCutmixBlendTheBatch compares the batches of a loader with mixup or cutmix
// against the same loader without them: each image must be its own image and the one
// before it in the batch blended with the batch's weight (mixup), or with the partner's
// pixels inside one box whose area gives the weight (cutmix); the partner labels are the
// neighbours', and every draw is the same on a second pass.
func TestMixupAndCutmixBlendTheBatch(t *testing.T) {
	src := imageList{}
	for k := range 10 {
		src = append(src, randomRGB(uint64(k), 12, 10))
	}
	p := Preprocess{Mode: ModeTorch, Channels: 3, Height: 8, Width: 9, Resize: ResizeSquish}
	base := LoaderOptions{BatchSize: 4, Shuffle: true, Seed: 3, Preprocess: p, Augment: Augment{HFlip: true}}
	plain, err := NewLoader(src, base)
	if err != nil {
		t.Fatal(err)
	}
	size := p.Size()
	type batch struct {
		images []float32
		labels []int
		mix    *Mix
	}
	collect := func(l *Loader) []batch {
		var out []batch
		for b, err := range l.Epoch(context.Background(), 2) {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, batch{append([]float32(nil), b.Images...), append([]int(nil), b.Labels...), b.Mix})
		}
		return out
	}
	want := collect(plain)
	for _, a := range []Augment{{HFlip: true, Mixup: 0.4}, {HFlip: true, Cutmix: 1}, {HFlip: true, Mixup: 0.2, Cutmix: 1}} {
		opts := base
		opts.Augment = a
		l, err := NewLoader(src, opts)
		if err != nil {
			t.Fatal(err)
		}
		got := collect(l)
		again := collect(l)
		sawCut, sawMix := false, false
		for bi, b := range got {
			w := want[bi]
			n := len(w.labels)
			m := b.mix
			if m == nil || len(m.PartnerLabels) != n {
				t.Fatalf("%+v batch %d: Mix %+v", a, bi, m)
			}
			if m.Lambda != again[bi].mix.Lambda {
				t.Fatalf("%+v batch %d: lambda %v then %v", a, bi, m.Lambda, again[bi].mix.Lambda)
			}
			for i := range n {
				j := (i + n - 1) % n
				if m.PartnerLabels[i] != w.labels[j] {
					t.Fatalf("batch %d image %d: partner label %d, want %d", bi, i, m.PartnerLabels[i], w.labels[j])
				}
				x, y, out := w.images[i*size:(i+1)*size], w.images[j*size:(j+1)*size], b.images[i*size:(i+1)*size]
				if !m.Cutmix {
					sawMix = true
					l, r := float32(m.Lambda), float32(1-m.Lambda)
					for k := range out {
						if out[k] != x[k]*l+y[k]*r {
							t.Fatalf("mixup batch %d image %d value %d: %v, want %v", bi, i, k, out[k], x[k]*l+y[k]*r)
						}
					}
					continue
				}
				sawCut = true
				// Every value is its own or the partner's; the partner's fill one box whose
				// area is 1 - lambda of the picture.
				pasted := 0
				for k := range out {
					switch {
					case out[k] == x[k]:
					case out[k] == y[k]:
						pasted++
					default:
						t.Fatalf("cutmix batch %d image %d value %d: %v is neither %v nor %v", bi, i, k, out[k], x[k], y[k])
					}
				}
				if frac := float64(pasted) / float64(size); frac > 1-m.Lambda+1e-9 {
					t.Fatalf("cutmix batch %d image %d: %.3f of the values pasted, lambda %v", bi, i, frac, m.Lambda)
				}
			}
		}
		if (a.Mixup > 0) != sawMix || (a.Cutmix > 0 && !sawCut) {
			t.Errorf("%+v: saw mixup %v, cutmix %v", a, sawMix, sawCut)
		}
	}
}

// TestMixLambdaDistribution compares the weights drawn for 10,000 batches with PyTorch's
// Beta samples (torch._sample_dirichlet([alpha, alpha])[0], as torchvision's references
// draw them), Kolmogorov-Smirnov at level 0.001, for two alphas.
func TestMixLambdaDistribution(t *testing.T) {
	const n = 10000
	var jobs []*pilJob
	for _, alpha := range []float64{0.2, 1.0} {
		jobs = append(jobs, &pilJob{
			BetaDraws: n, Alpha: alpha, name: fmt.Sprint("beta", alpha),
			check: func(t *testing.T, out []byte) {
				if len(out) != 8*n {
					t.Fatalf("reference: %d bytes", len(out))
				}
				ref := make([]float64, n)
				for i := range ref {
					ref[i] = math.Float64frombits(binary.LittleEndian.Uint64(out[8*i:]))
				}
				ours := make([]float64, n)
				images := make([]float32, 2*3)
				save := make([]float32, 3)
				a := Augment{Mixup: alpha}
				for i := range ours {
					ours[i] = a.mixBatch(images, []int{0, 1}, 2, 3, 1, 1, deriveKey(purposeMix, uint64(i)), save).Lambda
				}
				d, crit := ksStatistic(ours, ref), ksCritical(n, n)
				t.Logf("alpha %v: KS statistic %.4f (critical %.4f)", alpha, d, crit)
				if d > crit {
					t.Errorf("alpha %v: lambda's distribution differs from PyTorch's: KS %.4f > %.4f", alpha, d, crit)
				}
			},
		})
	}
	runPIL(t, jobs)
}
