package finetune

import (
	"path"
	"strings"
	"testing"
)

// TestNoDecayParams checks optimizer.no_decay's resolution on the BatchNorm base with the
// test head: bias takes every parameter of one dimension but the normalisation layers'
// (the convolutions' and the head's biases), norm the BatchNormalization scales and
// shifts, a glob the names it matches; a glob that matches nothing or does not parse is
// an error naming the key.
func TestNoDecayParams(t *testing.T) {
	cfg := testConfig(t)
	cfg.Model.ONNX = bnBase(t)
	cfg.Groups = GroupsConfig{}
	for _, tc := range []struct {
		entries []string
		want    func(name string, dims int, norm bool) bool
	}{
		{[]string{"bias", "norm"}, func(_ string, dims int, _ bool) bool { return dims <= 1 }},
		{[]string{"bias"}, func(_ string, dims int, norm bool) bool { return dims <= 1 && !norm }},
		{[]string{"norm"}, func(_ string, _ int, norm bool) bool { return norm }},
		{[]string{}, func(string, int, bool) bool { return false }},
		{[]string{"head.*"}, func(name string, _ int, _ bool) bool { ok, _ := path.Match("head.*", name); return ok }},
	} {
		cfg.Optimizer.NoDecay = tc.entries
		tr, err := New(cfg, WithoutDefaultHooks())
		if err != nil {
			t.Fatal(err)
		}
		norm := map[string]bool{}
		for _, n := range tr.model.IR().Graph.Nodes {
			if n.OpType == "BatchNormalization" {
				norm[n.Inputs[1]], norm[n.Inputs[2]] = true, true
			}
		}
		if len(norm) != 4 {
			t.Fatalf("the base has %d BatchNormalization parameters, want 4", len(norm))
		}
		count := 0
		for _, name := range tr.model.TrainableNames() {
			want := tc.want(name, len(tr.model.ParamShape(name)), norm[name])
			if tr.noDecay[name] != want {
				t.Errorf("%v: %s (shape %v): no decay %v, want %v", tc.entries, name, tr.model.ParamShape(name), tr.noDecay[name], want)
			}
			if want {
				count++
			}
		}
		if count == 0 && len(tc.entries) > 0 {
			t.Errorf("%v: no parameter: the check is weak", tc.entries)
		}
	}
	for _, bad := range []string{"nothing.*", "head.["} {
		cfg.Optimizer.NoDecay = []string{bad}
		if _, err := New(cfg, WithoutDefaultHooks()); err == nil || !strings.Contains(err.Error(), "optimizer.no_decay") || !strings.Contains(err.Error(), bad) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
