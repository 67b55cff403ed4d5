package optim

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"maps"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func randSlice(rng *rand.Rand, n int, scale float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * scale)
	}
	return x
}

// model is a few named tensors with fresh gradients on demand.
type model struct {
	names  []string
	values map[string][]float32
	rng    *rand.Rand
}

func newModel(seed uint64, sizes map[string]int) *model {
	m := &model{values: map[string][]float32{}, rng: rand.New(rand.NewPCG(seed, 7))}
	for _, n := range slices.Sorted(maps.Keys(sizes)) {
		m.names = append(m.names, n)
		m.values[n] = randSlice(m.rng, sizes[n], 1)
	}
	return m
}

// params returns the named parameters with new random gradients.
func (m *model) params(names ...string) []Param {
	var ps []Param
	for _, n := range names {
		ps = append(ps, Param{Name: n, Value: m.values[n], Grad: randSlice(m.rng, len(m.values[n]), 0.1)})
	}
	return ps
}

func (m *model) clone() *model {
	c := &model{names: m.names, values: map[string][]float32{}}
	for n, v := range m.values {
		c.values[n] = append([]float32(nil), v...)
	}
	return c
}

func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func allOptimizers(t *testing.T) map[string]func() Optimizer {
	t.Helper()
	must := func(o Optimizer, err error) Optimizer {
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	return map[string]func() Optimizer{
		"sgd":          func() Optimizer { return must(NewSGD(SGDConfig{Momentum: 0.9, WeightDecay: 1e-4})) },
		"sgd_nesterov": func() Optimizer { return must(NewSGD(SGDConfig{Momentum: 0.9, Nesterov: true})) },
		"sgd_plain":    func() Optimizer { return must(NewSGD(SGDConfig{})) },
		"adam":         func() Optimizer { return must(NewAdam(DefaultAdam())) },
		"adamw":        func() Optimizer { return must(NewAdamW(DefaultAdamW())) },
	}
}

func TestFrozenParametersUntouched(t *testing.T) {
	for name, mk := range allOptimizers(t) {
		t.Run(name, func(t *testing.T) {
			m := newModel(1, map[string]int{"base.w": 500, "base.b": 5, "head.w": 300, "head.b": 3})
			frozen := m.clone()
			opt := mk()
			for step := 0; step < 3; step++ {
				if err := opt.Step(m.params("head.w", "head.b"), 1e-2); err != nil {
					t.Fatal(err)
				}
			}
			for _, n := range []string{"base.w", "base.b"} {
				if !sameBits(m.values[n], frozen.values[n]) {
					t.Errorf("frozen %s changed", n)
				}
			}
			st := opt.State()
			if len(st.Params) != 2 {
				t.Errorf("state holds %d parameters, want the 2 trained ones", len(st.Params))
			}
			for _, n := range []string{"base.w", "base.b"} {
				if _, ok := st.Params[n]; ok {
					t.Errorf("frozen %s gained state", n)
				}
			}
			if got := st.Params["head.w"].Step; got != 3 {
				t.Errorf("head.w step %d, want 3", got)
			}
			// Unfreeze: the base starts its own count, the head keeps its state.
			if err := opt.Step(m.params("base.w", "base.b", "head.w", "head.b"), 1e-3); err != nil {
				t.Fatal(err)
			}
			st = opt.State()
			if st.Params["base.w"].Step != 1 || st.Params["head.w"].Step != 4 {
				t.Errorf("after unfreezing: base.w step %d (want 1), head.w step %d (want 4)",
					st.Params["base.w"].Step, st.Params["head.w"].Step)
			}
		})
	}
}

// TestOrderDoesNotMatter steps the same parameters in two orders.
func TestOrderDoesNotMatter(t *testing.T) {
	for name, mk := range allOptimizers(t) {
		t.Run(name, func(t *testing.T) {
			a := newModel(2, map[string]int{"x": 100, "y": 7, "z": 64})
			b := a.clone()
			oa, ob := mk(), mk()
			for step := 0; step < 4; step++ {
				pa := a.params("x", "y", "z")
				pb := []Param{
					{Name: "z", Value: b.values["z"], Grad: pa[2].Grad},
					{Name: "x", Value: b.values["x"], Grad: pa[0].Grad},
					{Name: "y", Value: b.values["y"], Grad: pa[1].Grad},
				}
				if err := oa.Step(pa, 1e-2); err != nil {
					t.Fatal(err)
				}
				if err := ob.Step(pb, 1e-2); err != nil {
					t.Fatal(err)
				}
			}
			for _, n := range a.names {
				if !sameBits(a.values[n], b.values[n]) {
					t.Errorf("%s differs with another parameter order", n)
				}
			}
		})
	}
}

// TestPerGroupSteps checks that stepping two groups separately with their own rates equals
// stepping each alone: state does not leak between groups.
func TestPerGroupSteps(t *testing.T) {
	for name, mk := range allOptimizers(t) {
		t.Run(name, func(t *testing.T) {
			a := newModel(3, map[string]int{"early": 50, "head": 20})
			b := a.clone()
			both := mk()
			early, head := mk(), mk()
			for step := 0; step < 3; step++ {
				pe, ph := a.params("early"), a.params("head")
				if err := both.Step(pe, 1e-4); err != nil {
					t.Fatal(err)
				}
				if err := both.Step(ph, 1e-2); err != nil {
					t.Fatal(err)
				}
				if err := early.Step([]Param{{Name: "early", Value: b.values["early"], Grad: pe[0].Grad}}, 1e-4); err != nil {
					t.Fatal(err)
				}
				if err := head.Step([]Param{{Name: "head", Value: b.values["head"], Grad: ph[0].Grad}}, 1e-2); err != nil {
					t.Fatal(err)
				}
			}
			for _, n := range a.names {
				if !sameBits(a.values[n], b.values[n]) {
					t.Errorf("%s: one optimizer stepped per group differs from one optimizer per group", n)
				}
			}
		})
	}
}

func TestStateRoundTrip(t *testing.T) {
	codecs := map[string]func(*State) (*State, error){
		"gob": func(s *State) (*State, error) {
			var buf bytes.Buffer
			if err := gob.NewEncoder(&buf).Encode(s); err != nil {
				return nil, err
			}
			var out State
			err := gob.NewDecoder(&buf).Decode(&out)
			return &out, err
		},
		"json": func(s *State) (*State, error) {
			raw, err := json.Marshal(s)
			if err != nil {
				return nil, err
			}
			var out State
			err = json.Unmarshal(raw, &out)
			return &out, err
		},
	}
	for name, mk := range allOptimizers(t) {
		for codec, rt := range codecs {
			t.Run(name+"/"+codec, func(t *testing.T) {
				m := newModel(4, map[string]int{"a": 1000, "b": 10, "c": 33, "frozen": 5})
				opt := mk()
				if err := opt.SetMomentum(0.85); err != nil {
					t.Fatal(err)
				}
				for step := 0; step < 3; step++ {
					if err := opt.Step(m.params("a", "b"), 1e-2); err != nil {
						t.Fatal(err)
					}
				}
				if err := opt.Step(m.params("a", "b", "c"), 1e-2); err != nil {
					t.Fatal(err)
				}
				saved := opt.State()
				decoded, err := rt(saved)
				if err != nil {
					t.Fatal(err)
				}
				restored := mk()
				if err := restored.Load(decoded); err != nil {
					t.Fatal(err)
				}
				if restored.Momentum() != 0.85 {
					t.Errorf("momentum after Load %v, want 0.85", restored.Momentum())
				}
				again := restored.State()
				if !reflect.DeepEqual(saved, again) {
					t.Fatalf("state differs after a %s round trip", codec)
				}
				for n, ps := range saved.Params {
					for _, pair := range [][2][]float32{
						{ps.ExpAvg, again.Params[n].ExpAvg},
						{ps.ExpAvgSq, again.Params[n].ExpAvgSq},
						{ps.MomentumBuffer, again.Params[n].MomentumBuffer},
					} {
						if !sameBits(pair[0], pair[1]) {
							t.Fatalf("%s: buffers not bit-exact", n)
						}
					}
				}
				// The snapshot is a copy: stepping on must not change it.
				before := opt.State()
				// Both optimizers continue identically from the same values.
				m2 := m.clone()
				for step := 0; step < 2; step++ {
					p1 := m.params("a", "b", "c")
					p2 := []Param{
						{Name: "a", Value: m2.values["a"], Grad: append([]float32(nil), p1[0].Grad...)},
						{Name: "b", Value: m2.values["b"], Grad: append([]float32(nil), p1[1].Grad...)},
						{Name: "c", Value: m2.values["c"], Grad: append([]float32(nil), p1[2].Grad...)},
					}
					if err := opt.Step(p1, 3e-3); err != nil {
						t.Fatal(err)
					}
					if err := restored.Step(p2, 3e-3); err != nil {
						t.Fatal(err)
					}
				}
				for _, n := range m.names {
					if !sameBits(m.values[n], m2.values[n]) {
						t.Errorf("%s: restored optimizer diverges from the original", n)
					}
				}
				if !reflect.DeepEqual(before, saved) {
					t.Error("State() snapshot changed by later steps")
				}
			})
		}
	}
}

func TestStepErrorsChangeNothing(t *testing.T) {
	for name, mk := range allOptimizers(t) {
		t.Run(name, func(t *testing.T) {
			m := newModel(5, map[string]int{"a": 10, "b": 4})
			opt := mk()
			if err := opt.Step(m.params("a", "b"), 1e-2); err != nil {
				t.Fatal(err)
			}
			snapshot := opt.State()
			values := m.clone()
			cases := []struct {
				params []Param
				lr     float64
				msg    string
			}{
				{m.params("a"), -1, "learning rate"},
				{m.params("a"), math.NaN(), "learning rate"},
				{m.params("a"), math.Inf(1), "learning rate"},
				{append(m.params("a"), Param{Value: []float32{1}, Grad: []float32{1}}), 1e-2, "no name"},
				{append(m.params("a", "b"), m.params("a")...), 1e-2, `"a" passed twice`},
				{append(m.params("a"), Param{Name: "b", Value: m.values["b"], Grad: []float32{1}}), 1e-2, "4 values but 1 gradients"},
				{append(m.params("b"), Param{Name: "a", Value: make([]float32, 3), Grad: make([]float32, 3)}), 1e-2, "optimizer state has 10"},
			}
			for _, c := range cases {
				err := opt.Step(c.params, c.lr)
				if err == nil || !strings.Contains(err.Error(), c.msg) {
					t.Errorf("error %v, want one containing %q", err, c.msg)
				}
			}
			if !reflect.DeepEqual(snapshot, opt.State()) {
				t.Error("a failed Step changed the state")
			}
			for _, n := range m.names {
				if !sameBits(values.values[n], m.values[n]) {
					t.Errorf("a failed Step changed %s", n)
				}
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	adam, _ := NewAdam(DefaultAdam())
	sgd, _ := NewSGD(SGDConfig{Momentum: 0.9})
	good := adam.State()
	cases := []struct {
		opt Optimizer
		s   *State
		msg string
	}{
		{adam, nil, "nil state"},
		{sgd, good, `"adam" optimizer cannot load into "sgd"`},
		{adam, &State{Optimizer: "adamw", Hyper: good.Hyper}, "cannot load"},
		{adam, &State{Optimizer: "adam", Hyper: Hyper{Momentum: 1, Beta2: 0.999, Eps: 1e-8}}, "beta1"},
		{adam, &State{Optimizer: "adam", Hyper: good.Hyper, Params: map[string]ParamState{
			"x": {Step: 1, ExpAvg: []float32{1, 2}, ExpAvgSq: []float32{1}}}}, "exp_avg has 2"},
		{adam, &State{Optimizer: "adam", Hyper: good.Hyper, Params: map[string]ParamState{
			"x": {Step: -1}}}, "step -1"},
		{adam, &State{Optimizer: "adam", Hyper: good.Hyper, Params: map[string]ParamState{
			"x": {Step: 1, MomentumBuffer: []float32{1}}}}, "momentum buffer"},
		{sgd, &State{Optimizer: "sgd", Hyper: Hyper{Momentum: 0.9}, Params: map[string]ParamState{
			"x": {Step: 1, ExpAvg: []float32{1}}}}, "Adam moments"},
		{sgd, &State{Optimizer: "sgd", Hyper: Hyper{Nesterov: true}}, "nesterov"},
	}
	for i, c := range cases {
		err := c.opt.Load(c.s)
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("case %d: error %v, want one containing %q", i, err, c.msg)
		}
	}
}

func TestNew(t *testing.T) {
	o, err := New("sgd", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c := o.(*SGD).Config(); c != (SGDConfig{Momentum: 0.9}) {
		t.Errorf("sgd defaults %+v", c)
	}
	o, err = New("sgd", map[string]float64{"momentum": 0.8, "nesterov": 1, "weight_decay": 1e-4})
	if err != nil {
		t.Fatal(err)
	}
	if c := o.(*SGD).Config(); c != (SGDConfig{Momentum: 0.8, Nesterov: true, WeightDecay: 1e-4}) {
		t.Errorf("sgd options %+v", c)
	}
	o, err = New("adam", map[string]float64{"weight_decay": 0})
	if err != nil || o.Name() != "adam" || o.(*Adam).Config() != DefaultAdam() {
		t.Errorf("adam: %v %v", o, err)
	}
	o, err = New("adamw", map[string]float64{"beta2": 0.99})
	want := DefaultAdamW()
	want.Beta2 = 0.99
	if err != nil || o.Name() != "adamw" || o.(*Adam).Config() != want {
		t.Errorf("adamw: %v %v", o, err)
	}
	bad := []struct {
		name string
		opts map[string]float64
		msg  []string
	}{
		{"rmsprop", nil, []string{`unknown optimizer "rmsprop"`, "adam, adamw, sgd"}},
		{"adam", map[string]float64{"momentum": 0.9}, []string{`unknown option "momentum"`, "beta1, beta2, eps, weight_decay"}},
		{"sgd", map[string]float64{"nesterov": 0.5}, []string{`"nesterov"`, "0 or 1"}},
		{"sgd", map[string]float64{"momentum": 0, "nesterov": 1}, []string{"nesterov needs momentum"}},
		{"sgd", map[string]float64{"momentum": 1}, []string{"momentum 1", "[0, 1)"}},
		{"adam", map[string]float64{"eps": 0}, []string{"eps"}},
		{"adam", map[string]float64{"beta2": -0.1}, []string{"beta2"}},
		{"adamw", map[string]float64{"weight_decay": -1}, []string{"weight_decay"}},
		{"adamw", map[string]float64{"beta1": math.NaN()}, []string{"beta1", "NaN"}},
	}
	for _, b := range bad {
		_, err := New(b.name, b.opts)
		if err == nil {
			t.Errorf("New(%q, %v): no error", b.name, b.opts)
			continue
		}
		for _, frag := range b.msg {
			if !strings.Contains(err.Error(), frag) {
				t.Errorf("New(%q, %v): error %q lacks %q", b.name, b.opts, err, frag)
			}
		}
	}
}

func TestSetMomentum(t *testing.T) {
	sgd, _ := NewSGD(SGDConfig{Momentum: 0.9, Nesterov: true})
	if err := sgd.SetMomentum(0); err == nil {
		t.Error("Nesterov SGD accepted momentum 0")
	}
	if err := sgd.SetMomentum(1.2); err == nil {
		t.Error("momentum 1.2 accepted")
	}
	if err := sgd.SetMomentum(0.85); err != nil || sgd.Momentum() != 0.85 {
		t.Errorf("SetMomentum(0.85): %v, momentum %v", err, sgd.Momentum())
	}
	adam, _ := NewAdam(DefaultAdam())
	if err := adam.SetMomentum(math.NaN()); err == nil {
		t.Error("beta1 NaN accepted")
	}
	if err := adam.SetMomentum(0.95); err != nil || adam.Momentum() != 0.95 || adam.Config().Beta1 != 0.95 {
		t.Errorf("SetMomentum(0.95): %v, beta1 %v", err, adam.Momentum())
	}
}

// TestParallelMatchesSerial: the parallel path gives the same bits as the serial one.
func TestParallelMatchesSerial(t *testing.T) {
	for name, mk := range allOptimizers(t) {
		t.Run(name, func(t *testing.T) {
			a := newModel(6, map[string]int{"big": 5000, "mid": 777, "small": 3})
			b := a.clone()
			oa, ob := mk(), mk()
			for step := 0; step < 3; step++ {
				pa := a.params("big", "mid", "small")
				pb := make([]Param, len(pa))
				for i, p := range pa {
					pb[i] = Param{Name: p.Name, Value: b.values[p.Name], Grad: append([]float32(nil), p.Grad...)}
				}
				na := ClipGradNorm(pa, 1) // serial: below serialBelow
				if err := oa.Step(pa, 1e-2); err != nil {
					t.Fatal(err)
				}
				c, s := chunk, serialBelow
				chunk, serialBelow = 100, 0
				nb := ClipGradNorm(pb, 1)
				err := ob.Step(pb, 1e-2)
				chunk, serialBelow = c, s
				if err != nil {
					t.Fatal(err)
				}
				// The norm sums chunk partials: the order differs, the value barely.
				if math.Abs(na-nb) > 1e-12*na {
					t.Errorf("norms %v and %v", na, nb)
				}
			}
			for _, n := range a.names {
				if !sameBits(a.values[n], b.values[n]) {
					t.Errorf("%s differs between serial and parallel steps", n)
				}
			}
		})
	}
}

func TestClipGradNorm(t *testing.T) {
	g1, g2 := []float32{3, 0}, []float32{0, 4}
	ps := []Param{{Name: "a", Value: make([]float32, 2), Grad: g1}, {Name: "b", Value: make([]float32, 2), Grad: g2}}
	if n := ClipGradNorm(ps, 10); n != 5 || g1[0] != 3 || g2[1] != 4 {
		t.Errorf("no clipping expected: norm %v, grads %v %v", n, g1, g2)
	}
	if n := ClipGradNorm(ps, 1); n != 5 {
		t.Errorf("norm %v, want 5", n)
	}
	c := float32(1 / (5 + 1e-6))
	if g1[0] != 3*c || g2[1] != 4*c {
		t.Errorf("clipped grads %v %v, want %v %v", g1, g2, 3*c, 4*c)
	}
	if n := GradNorm(ps); math.Abs(n-1) > 1e-6 {
		t.Errorf("norm after clipping %v, want 1", n)
	}
	// Non-finite norms leave the gradients alone.
	nan := []float32{float32(math.NaN()), 1}
	if n := ClipGradNorm([]Param{{Name: "n", Value: make([]float32, 2), Grad: nan}}, 1); !math.IsNaN(n) || nan[1] != 1 {
		t.Errorf("NaN gradient: norm %v, grads %v", n, nan)
	}
	inf := []float32{float32(math.Inf(1)), 1}
	if n := ClipGradNorm([]Param{{Name: "i", Value: make([]float32, 2), Grad: inf}}, 1); !math.IsInf(n, 1) || inf[1] != 1 {
		t.Errorf("Inf gradient: norm %v, grads %v", n, inf)
	}
	if n := ClipGradNorm(nil, 1); n != 0 {
		t.Errorf("empty norm %v", n)
	}
	defer func() {
		if recover() == nil {
			t.Error("negative maxNorm did not panic")
		}
	}()
	ClipGradNorm(ps, -1)
}

// TestMomentumBufferStartsLate: SGD whose momentum becomes non-zero later starts the buffer
// from the gradient of that step, as PyTorch does for a parameter without a buffer.
func TestMomentumBufferStartsLate(t *testing.T) {
	o, _ := NewSGD(SGDConfig{})
	p := []float32{1}
	if err := o.Step([]Param{{Name: "p", Value: p, Grad: []float32{1}}}, 0.1); err != nil {
		t.Fatal(err)
	}
	if o.State().Params["p"].MomentumBuffer != nil {
		t.Fatal("plain SGD keeps a buffer")
	}
	_ = o.SetMomentum(0.5)
	if err := o.Step([]Param{{Name: "p", Value: p, Grad: []float32{2}}}, 0.1); err != nil {
		t.Fatal(err)
	}
	if b := o.State().Params["p"].MomentumBuffer; len(b) != 1 || b[0] != 2 {
		t.Errorf("buffer %v, want [2]", b)
	}
	if err := o.Step([]Param{{Name: "p", Value: p, Grad: []float32{1}}}, 0.1); err != nil {
		t.Fatal(err)
	}
	if b := o.State().Params["p"].MomentumBuffer; b[0] != 2 {
		t.Errorf("buffer %v, want [0.5*2+1 = 2]", b)
	}
	want := float32(1) - float32(0.1)*1 - float32(0.1)*2 - float32(0.1)*2
	if math.Abs(float64(p[0]-want)) > 1e-6 {
		t.Errorf("p = %v, want %v", p[0], want)
	}
}

// TestAdamKernelsAgree checks every Adam kernel the CPU runs against the Go
// loop, bit for bit, over lengths that leave every remainder of the vector
// widths, with Adam's and AdamW's coefficients, NaN, infinities and zeros
// among the values.
func TestAdamKernelsAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	coefs := []adamCoef{
		{b1: 0.9, omb1: 0.1, b2: 0.999, omb2: 0.001, decay: 1, negStep: -1e-3, eps: 1e-8},
		{b1: 0.9, omb1: 0.1, b2: 0.999, omb2: 0.001, wd: 0.01, decay: 1, negStep: -3e-4, eps: 1e-8},
		{b1: 0.8, omb1: 0.2, b2: 0.99, omb2: 0.01, decay: 0.999, negStep: -2e-2, eps: 3e-7},
	}
	var names []string
	for _, k := range adamKernels() {
		names = append(names, k.name)
		adamRan[k.name] = true
		for _, n := range []int{0, 1, 7, 8, 15, 16, 17, 33, 1000} {
			for ci := range coefs {
				fill := func() []float32 {
					s := make([]float32, n)
					for i := range s {
						s[i] = float32(rng.NormFloat64())
					}
					return s
				}
				p, g, m, v := fill(), fill(), fill(), fill()
				for i := range v {
					v[i] *= v[i] // a second moment is not negative
				}
				if n > 5 {
					g[1], g[2], p[3], v[4], g[5] = float32(math.NaN()), float32(math.Inf(1)), 0, 0, 0
				}
				p2, m2, v2 := append([]float32(nil), p...), append([]float32(nil), m...), append([]float32(nil), v...)
				k.fn(p, g, m, v, &coefs[ci])
				adamKernelGo(p2, g, m2, v2, &coefs[ci])
				for i := range p {
					for _, pair := range [][2]float32{{p[i], p2[i]}, {m[i], m2[i]}, {v[i], v2[i]}} {
						if math.Float32bits(pair[0]) != math.Float32bits(pair[1]) && !(pair[0] != pair[0] && pair[1] != pair[1]) {
							t.Fatalf("%s n %d coef %d: element %d = %g, the Go loop %g", k.name, n, ci, i, pair[0], pair[1])
						}
					}
				}
			}
		}
	}
	t.Logf("ran %v", names)
}

// TestNoDecay checks that a parameter marked NoDecay steps as PyTorch steps a parameter
// group with weight_decay 0 beside the decayed group of one optimizer: bit for bit as
// the same optimizer without weight decay, while the other parameters of the same steps
// keep theirs; for SGD, Adam (L2 in the gradient) and AdamW (decoupled).
func TestNoDecay(t *testing.T) {
	for _, tc := range []struct {
		name        string
		with, witho func() (Optimizer, error)
	}{
		{"sgd", func() (Optimizer, error) { return NewSGD(SGDConfig{Momentum: 0.9, WeightDecay: 0.1}) },
			func() (Optimizer, error) { return NewSGD(SGDConfig{Momentum: 0.9}) }},
		{"adam", func() (Optimizer, error) { c := DefaultAdam(); c.WeightDecay = 0.1; return NewAdam(c) },
			func() (Optimizer, error) { return NewAdam(DefaultAdam()) }},
		{"adamw", func() (Optimizer, error) { c := DefaultAdamW(); c.WeightDecay = 0.1; return NewAdamW(c) },
			func() (Optimizer, error) { c := DefaultAdamW(); c.WeightDecay = 0; return NewAdamW(c) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mixed, err := tc.with()
			if err != nil {
				t.Fatal(err)
			}
			decayed, _ := tc.with()
			plain, _ := tc.witho()
			decayedB, _ := tc.with()
			m := newModel(3, map[string]int{"w": 300, "b": 40})
			ref := m.clone()
			bDecayed := slices.Clone(m.values["b"])
			for range 5 {
				ps := m.params("w", "b")
				ps[1].NoDecay = true
				w := []Param{{Name: "w", Value: ref.values["w"], Grad: slices.Clone(ps[0].Grad)}}
				b := []Param{{Name: "b", Value: ref.values["b"], Grad: slices.Clone(ps[1].Grad)}}
				if err := mixed.Step(ps, 0.05); err != nil {
					t.Fatal(err)
				}
				if err := decayed.Step(w, 0.05); err != nil {
					t.Fatal(err)
				}
				if err := plain.Step(b, 0.05); err != nil {
					t.Fatal(err)
				}
				if err := decayedB.Step([]Param{{Name: "b", Value: bDecayed, Grad: slices.Clone(ps[1].Grad)}}, 0.05); err != nil {
					t.Fatal(err)
				}
			}
			if !sameBits(m.values["b"], ref.values["b"]) {
				t.Error("the NoDecay parameter differs from the optimizer without weight decay")
			}
			if !sameBits(m.values["w"], ref.values["w"]) {
				t.Error("the decayed parameter differs from the optimizer with weight decay")
			}
			if sameBits(bDecayed, m.values["b"]) {
				t.Error("the weight decay changes nothing: the check is weak")
			}
		})
	}
}
