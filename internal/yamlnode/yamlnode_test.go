package yamlnode

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

type inner struct {
	Width int     `yaml:"width"`
	Rate  float64 `yaml:"rate"`
}

type outer struct {
	Name   string             `yaml:"name"`
	Seed   uint64             `yaml:"seed"`
	On     bool               `yaml:"on"`
	Inner  inner              `yaml:"inner"`
	List   []inner            `yaml:"list"`
	Sizes  []int              `yaml:"sizes"`
	Rates  map[string]float64 `yaml:"rates"`
	Custom upper              `yaml:"custom"`
	Hidden int                `yaml:"-"`
}

// upper decodes itself: a string, upper-cased; "bad" is an error at its node.
type upper string

func (u *upper) UnmarshalYAML(n *yaml.Node) error {
	if n.Value == "bad" {
		return fmt.Errorf("bad is not allowed")
	}
	*u = upper(strings.ToUpper(n.Value))
	return nil
}

func decodeText(t *testing.T, text string, v any) error {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatalf("%q: %v", text, err)
	}
	return Decode(&doc, v)
}

func TestDecode(t *testing.T) {
	got := outer{Name: "default", Inner: inner{Width: 3, Rate: 0.5}, Sizes: []int{9}}
	text := "seed: 7\non: true\ninner: {rate: 2}\nlist:\n  - {width: 1}\n  - {rate: 1e-3}\nsizes:\nrates: {Early: 1e-5, late: 1}\ncustom: abc\n"
	if err := decodeText(t, text, &got); err != nil {
		t.Fatal(err)
	}
	want := outer{Name: "default", Seed: 7, On: true, Inner: inner{Width: 3, Rate: 2},
		List: []inner{{Width: 1}, {Rate: 1e-3}}, Rates: map[string]float64{"Early": 1e-5, "late": 1}, Custom: "ABC"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded %+v\nwant    %+v", got, want)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"nmae: x\n", `1: unknown key "nmae"; did you mean "name"? (valid keys: custom, inner, list, name, on, rates, seed, sizes)`},
		{"inner:\n  widht: 3\n", `2: unknown key "inner.widht"; did you mean "width"?`},
		{"list:\n  - {width: 1}\n  - {wdth: 1}\n", `3: unknown key "list[1].wdth"`},
		{"seed: many\n", `1: seed: "many"; want a whole number, 0 or more`},
		{"seed: -1\n", `1: seed: -1; want a whole number, 0 or more`},
		{"inner: {width: 2.5}\n", `1: inner.width: 2.5; want a whole number`},
		{"inner: {width: '3'}\n", `1: inner.width: "3"; want a whole number`},
		{"inner: {rate: '1e-3'}\n", `1: inner.rate: "1e-3"; want a number`},
		{"on: yes\n", `1: on: "yes"; want true or false`},
		{"sizes: 3\n", `1: sizes: 3; want a list of whole numbers`},
		{"sizes: [1, x]\n", `1: sizes[1]: "x"; want a whole number`},
		{"inner: 3\n", `1: inner: 3; want a mapping of width, rate`},
		{"rates: {a: x}\n", `1: rates.a: "x"; want a number`},
		{"seed: 1\nseed: 2\n", `2: seed: given twice (first at line 1)`},
		{"custom: bad\n", `1: custom: bad is not allowed`},
		{"Hidden: 1\n", `unknown key "Hidden"`},
	} {
		var got outer
		err := decodeText(t, c.text, &got)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v\nwant an error containing %q", c.text, err, c.want)
		}
	}
}

func TestNearest(t *testing.T) {
	keys := []string{"batch_size", "cut_frac", "lr", "name", "Late"}
	for s, want := range map[string]string{"learning_rate": "lr", "batchsize": "batch_size", "cut": "cut_frac", "late": "Late", "nmae": "name"} {
		if got := Nearest(s, keys); got != want {
			t.Errorf("Nearest(%q) = %q, want %q", s, got, want)
		}
	}
}

// TestLine finds the lines of keys and list items by path, and of the deepest part of a
// path that is there.
func TestLine(t *testing.T) {
	src := "seed: 1\nstages:\n  - {name: a, epochs: 2}\n  - name: b\n    swa: 3\ndata:\n  augment:\n    mixup: 0.2\n"
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{
		"seed": 1, "stages": 2, "stages[0]": 3, "stages[0].epochs": 3, "stages[1].swa": 5, "stages[1]": 4,
		"stages[2].swa": 2, "data.augment.mixup": 8, "data.augment.cutmix": 7, "head.pool": 0, "seed[0]": 1,
	} {
		if got := Line(&doc, path); got != want {
			t.Errorf("Line(%q) = %d, want %d", path, got, want)
		}
	}
}
