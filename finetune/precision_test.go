package finetune

import (
	"context"
	"math"
	"strings"
	"testing"

	"toolkit/backend/kernels"
)

// TestPrecisionBF16 runs a short recipe with precision: bf16 where the CPU has
// AVX512_BF16: the bfloat16 products are in use while it trains (a hook sees them),
// the float32 ones afterwards, and the losses are finite and close to the float32 run's
// (the first step within 1%: the same weights, the products' operands rounded to
// bfloat16). Where the CPU lacks it, New refuses the recipe saying why.
func TestPrecisionBF16(t *testing.T) {
	cfg := testConfig(t)
	cfg.Stages = cfg.Stages[:1]
	cfg.Stages[0].Epochs = 1
	cfg.Precision = "bf16"
	if err := kernels.BF16Available(); err != nil {
		_, err := New(cfg)
		if err == nil || !strings.Contains(err.Error(), "AVX512_BF16") {
			t.Fatalf("New on a CPU without AVX512_BF16: %v, want a refusal naming it", err)
		}
		return
	}
	before := kernels.Current()
	var during []string
	var losses [2][]float64
	run := func(precision string, i int) {
		c := cfg
		c.Precision = precision
		c.Output.Dir = t.TempDir()
		hook := Hook{Name: "check", Step: func(t2 *Trainer, info *StepInfo) error {
			during = append(during, kernels.Current())
			losses[i] = append(losses[i], info.StepLoss)
			return nil
		}}
		tr, err := New(c, WithHooks(hook), WithoutDefaultHooks())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	run("bf16", 0)
	for _, k := range during {
		if k != kernels.BF16 {
			t.Fatalf("a bf16 run's step ran on %s", k)
		}
	}
	if kernels.Current() != before {
		t.Errorf("after the bf16 run the products are %s, before it %s", kernels.Current(), before)
	}
	run("float32", 1)
	if len(losses[0]) == 0 || len(losses[0]) != len(losses[1]) {
		t.Fatalf("%d and %d steps", len(losses[0]), len(losses[1]))
	}
	for i, l := range losses[0] {
		if math.IsNaN(l) || math.IsInf(l, 0) {
			t.Fatalf("bf16 step %d: loss %v", i, l)
		}
	}
	if d := math.Abs(losses[0][0]-losses[1][0]) / losses[1][0]; d > 0.01 || d == 0 {
		t.Errorf("first step's loss: bf16 %v, float32 %v (relative difference %.2g: want above 0 and within 1%%)", losses[0][0], losses[1][0], d)
	}
}
