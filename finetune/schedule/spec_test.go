package schedule

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// decodeYAML reads the value of key v in `v: <text>` into dst.
func decodeYAML(t *testing.T, text string, dst any) error {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("v: "+text+"\n"), &doc); err != nil {
		t.Fatalf("%q: %v", text, err)
	}
	return doc.Content[0].Content[1].Decode(dst)
}

func TestSpecYAML(t *testing.T) {
	for _, c := range []struct {
		text string
		want Spec
	}{
		{"onecycle", Spec{Name: "onecycle"}},
		{"{name: stlr, cut_frac: 0.2}", Spec{Name: "stlr", Options: map[string]float64{"cut_frac": 0.2}}},
		{"{name: onecycle, cycle_momentum: false, div: 10}", Spec{Name: "onecycle", Options: map[string]float64{"cycle_momentum": 0, "div": 10}}},
		{"{name: warmup, warmup_steps: 100}", Spec{Name: "warmup", Options: map[string]float64{"warmup_steps": 100}}},
		{"", Spec{}},
	} {
		var got Spec
		if err := decodeYAML(t, c.text, &got); err != nil {
			t.Errorf("%q: %v", c.text, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: %#v, want %#v", c.text, got, c.want)
		}
		// The written form reads back as the same spec, in YAML and in JSON.
		out, err := yaml.Marshal(struct{ V Spec }{got})
		if err != nil {
			t.Fatal(err)
		}
		var w struct{ V Spec }
		if err := yaml.Unmarshal(out, &w); err != nil {
			t.Errorf("%q written as %q: %v", c.text, out, err)
		}
		again := w.V
		if want := c.want; want.IsZero() {
			want = Spec{Name: "constant"}
			if !reflect.DeepEqual(again, want) {
				t.Errorf("%q written as %q reads %#v", c.text, out, again)
			}
		} else if !reflect.DeepEqual(again, c.want) {
			t.Errorf("%q written as %q reads %#v", c.text, out, again)
		}
		js, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		var fromJSON Spec
		if err := json.Unmarshal(js, &fromJSON); err != nil {
			t.Errorf("%q as JSON %s: %v", c.text, js, err)
		}
	}
	for _, c := range []struct{ text, want string }{
		{"triangle", `unknown schedule "triangle"; did you mean`},
		{"onecylce", `did you mean "onecycle"?`},
		{"{name: stlr, cut: 0.2}", `unknown key "cut"; did you mean "cut_frac"?`},
		{"{cut_frac: 0.2}", "the mapping needs a name"},
		{"{name: stlr, cut_frac: true}", `cut_frac: true; want a number`},
		{"{name: stlr, cut_frac: '0.2'}", `cut_frac: "0.2"; want a number`},
		{"{name: onecycle, cycle_momentum: 1}", `cycle_momentum: 1; want true or false`},
		{"{name: warmup, warmup_steps: 2.5}", `warmup_steps: 2.5; want a whole number`},
		{"{name: stlr, cut_frac: 2}", `option "cut_frac" = 2: must be in (0, 1)`},
		{"{name: warmup}", "warm-up length missing"},
		{"[stlr]", "a list; want a schedule's name"},
		{"1", "1; want a schedule's name"},
	} {
		var got Spec
		err := decodeYAML(t, c.text, &got)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want an error containing %q", c.text, err, c.want)
		}
	}
}

// TestOptionDefaults checks the defaults the options table shows (in editors and the
// README) against the schedules' own defaults.
func TestOptionDefaults(t *testing.T) {
	for _, name := range Names() {
		required := map[string]float64{}
		if name == "warmup" || name == "warmup_cosine" {
			required["warmup_steps"] = 10
		}
		withDefaults := map[string]float64{}
		for k, v := range required {
			withDefaults[k] = v
		}
		for _, o := range parsers[name].options {
			if !math.IsNaN(o.def) {
				withDefaults[o.key] = o.def
			}
		}
		a, errA := Parse(name, withDefaults)
		b, errB := Parse(name, required)
		if errA != nil || errB != nil || a != b {
			t.Errorf("%s: with the listed defaults %#v (%v), without %#v (%v)", name, a, errA, b, errB)
		}
	}
}

func TestRatesYAML(t *testing.T) {
	for _, c := range []struct {
		text string
		want Rates
		sp   Spread
	}{
		{"1e-3", Rates{Rate: 1e-3}, Scalar(1e-3)},
		{"1", Rates{Rate: 1}, Scalar(1)},
		{"{max: 1e-3}", Rates{Max: 1e-3}, ULMFiT{Max: 1e-3, Factor: DefaultFactor}},
		{"{max: 1e-3, factor: 3}", Rates{Max: 1e-3, Factor: 3}, ULMFiT{Max: 1e-3, Factor: 3}},
		{"{slice: [1e-5, 1e-3]}", Rates{Slice: []float64{1e-5, 1e-3}}, Slice{Lo: 1e-5, Hi: 1e-3}},
		{"{slice: [1e-3]}", Rates{Slice: []float64{1e-3}}, Slice{Hi: 1e-3}},
		{"{early: 1e-5, Late: 1e-4, head: 1e-3}", Rates{PerGroup: map[string]float64{"early": 1e-5, "Late": 1e-4, "head": 1e-3}}, nil},
	} {
		var got Rates
		if err := decodeYAML(t, c.text, &got); err != nil {
			t.Errorf("%q: %v", c.text, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: %#v, want %#v", c.text, got, c.want)
		}
		sp, err := got.Spread()
		if err != nil {
			t.Errorf("%q: %v", c.text, err)
		}
		if c.sp != nil && sp != c.sp {
			t.Errorf("%q: spread %#v, want %#v", c.text, sp, c.sp)
		}
		out, err := yaml.Marshal(struct{ V Rates }{got})
		if err != nil {
			t.Fatal(err)
		}
		var w struct{ V Rates }
		if err := yaml.Unmarshal(out, &w); err != nil {
			t.Errorf("%q written as %q: %v", c.text, out, err)
		}
		again := w.V
		if !reflect.DeepEqual(again, c.want) {
			t.Errorf("%q written as %q reads %#v", c.text, out, again)
		}
		js, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		var fromJSON Rates
		if err := json.Unmarshal(js, &fromJSON); err != nil || !reflect.DeepEqual(fromJSON, c.want) {
			t.Errorf("%q as JSON %s reads %#v (%v)", c.text, js, fromJSON, err)
		}
	}
	p, _ := Rates{PerGroup: map[string]float64{"early": 1e-5, "Late": 1e-4, "head": 1e-3}}.Spread()
	rates, err := p.Rates([]string{"early", "Late", "head"}, []string{"early", "Late", "head"})
	if err != nil || !reflect.DeepEqual(rates, []float64{1e-5, 1e-4, 1e-3}) {
		t.Errorf("per-group rates with the names as written: %v (%v)", rates, err)
	}
	for _, c := range []struct{ text, want string }{
		{"0", "lr 0: must be finite and > 0"},
		{"-1", "lr -1: must be finite and > 0"},
		{"'1e-3'", `"1e-3"; want a rate such as 1e-3`},
		{"fast", `"fast"; want a rate`},
		{"true", "true; want a rate"},
		{"[1e-3]", "a list; want a rate"},
		{"{}", "an empty mapping"},
		{"{factor: 2.6}", "factor needs max"},
		{"{max: 0}", "max: 0; want a number > 0"},
		{"{max: 1e-3, factor: -2}", "lr factor -2: must be finite and > 0"},
		{"{max: 1e-3, head: 1e-3}", "max belongs to ULMFiT's {max, factor}"},
		{"{slice: [1e-3, 1e-5]}", "lr slice [0.001, 1e-05]: lo must be <= hi"},
		{"{slice: [0, 1e-3]}", "lr slice lo 0"},
		{"{slice: [1e-5, 1e-4, 1e-3]}", "3 values"},
		{"{slice: [1e-5, x]}", `slice[1]: "x"; want a number`},
		{"{slice: [1e-5, 1e-3], max: 1e-3}", "slice takes no other keys"},
		{"{slice: 1e-3}", "slice: 1e-3; want a list of numbers"},
		{"{slice: []}", "an empty list"},
		{"{early: -1, head: 1e-3}", `lr: group "early" rate -1: must be finite and > 0`},
		{"{early: '1e-4'}", `early: "1e-4"; want a number`},
		{"{early: 1e-4, early: 1e-3}", "early: given twice"},
	} {
		var got Rates
		err := decodeYAML(t, c.text, &got)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want an error containing %q", c.text, err, c.want)
		}
	}
	if _, err := (Rates{Rate: 1e-3, Max: 1e-3}).Spread(); err == nil || !strings.Contains(err.Error(), "given together") {
		t.Errorf("two forms: %v", err)
	}
	if _, err := (Rates{}).Spread(); err == nil || !strings.Contains(err.Error(), "lr: missing") {
		t.Errorf("no form: %v", err)
	}
}
