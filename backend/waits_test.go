package backend

import (
	"fmt"
	"slices"
	"testing"

	"toolkit/onnx"
)

// vggLikeModel is a chain of VGG's shape at 32×32, batch 2: two 3×3 convolutions with
// Relus at full size, a max pooling, two at half size, a global average pooling and a
// Gemm. Training it, each convolution's weight gradient runs beside the following
// steps, and the half-size ones' inputs were kept through the full-size gradients.
func vggLikeModel() *onnx.Model {
	attr := func(name string, ints ...int64) *onnx.Attribute {
		return &onnx.Attribute{Name: name, Type: onnx.AttrInts, Ints: ints}
	}
	var nodes []*onnx.Node
	var inits []*onnx.Tensor
	in := "x"
	for i, c := range [][2]int64{{3, 16}, {16, 16}, {16, 32}, {32, 32}} {
		w, out, r := fmt.Sprintf("w%d", i), fmt.Sprintf("c%d", i), fmt.Sprintf("r%d", i)
		nodes = append(nodes,
			&onnx.Node{Name: out, OpType: "Conv", Inputs: []string{in, w}, Outputs: []string{out}, Attributes: []*onnx.Attribute{attr("pads", 1, 1, 1, 1)}},
			&onnx.Node{Name: r, OpType: "Relu", Inputs: []string{out}, Outputs: []string{r}})
		inits = append(inits, testTensor(w, []int64{c[1], c[0], 3, 3}, func(j int) float32 { return 0.05 * float32((j*7+i)%11-5) }))
		in = r
		if i == 1 {
			nodes = append(nodes, &onnx.Node{Name: "pool", OpType: "MaxPool", Inputs: []string{in}, Outputs: []string{"p"},
				Attributes: []*onnx.Attribute{attr("kernel_shape", 2, 2), attr("strides", 2, 2)}})
			in = "p"
		}
	}
	nodes = append(nodes,
		&onnx.Node{Name: "gap", OpType: "GlobalAveragePool", Inputs: []string{in}, Outputs: []string{"g"}},
		&onnx.Node{Name: "fl", OpType: "Flatten", Inputs: []string{"g"}, Outputs: []string{"f"}},
		&onnx.Node{Name: "fc", OpType: "Gemm", Inputs: []string{"f", "wf"}, Outputs: []string{"y"}, Attributes: []*onnx.Attribute{{Name: "transB", Type: onnx.AttrInt, Int: 1}}})
	inits = append(inits, testTensor("wf", []int64{3, 32}, func(j int) float32 { return 0.1 * float32(j%5-2) }))
	return tinyModel(nodes, inits, []int64{2, 3, 32, 32})
}

// TestPlanWaits checks planWaits on vggLikeModel: a step is made to wait for the
// asynchronous gradient under way and the arena comes out smaller than with the
// asynchronous gradients waited for only by the next one; every value an asynchronous
// gradient reads lives until the step that waits for it (the executor's rule, written
// out here: the next asynchronous step, or the end; or the step before a step that
// waits, which waits before it writes anything), and the executor does wait there; no two values
// alive together overlap; and the loss and every gradient are the same bits as without
// the waits.
func TestPlanWaits(t *testing.T) {
	m, err := NewModel(vggLikeModel())
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Batch: 2, Training: true, Trainable: m.TrainableNames(), Loss: CrossEntropy}
	waiting, err := m.Program(opts)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := m.Program(opts)
	if err != nil {
		t.Fatal(err)
	}
	var waits []string
	for i := range plain.p.steps {
		if plain.p.steps[i].waits {
			waits = append(waits, plain.p.steps[i].name)
		}
		plain.p.steps[i].waits = false
	}
	plain.p.planMemory()
	plain.p.arena.reserve(plain.p.mem.size)
	if len(waits) == 0 || waiting.p.mem.size >= plain.p.mem.size {
		t.Fatalf("waits %v: arena of %d elements, %d without", waits, waiting.p.mem.size, plain.p.mem.size)
	}
	t.Logf("waits %v: arena of %d elements, %d without", waits, waiting.p.mem.size, plain.p.mem.size)
	for _, p := range []*program[float32]{waiting.p, plain.p} {
		checkNoOverlap(t, p)
		for j, s := range p.steps {
			if !s.async {
				continue
			}
			k := j + 1 // the step that waits for it
			for k < len(p.steps) && !p.steps[k].async && !p.steps[k].waits {
				k++
			}
			until := min(k, len(p.steps)-1) // an asynchronous step clears its output first
			if k < len(p.steps) && p.steps[k].waits {
				until = k - 1 // a step that waits does so before anything else
			}
			for _, a := range append(slices.Clone(s.args), s.saved) {
				if a >= 0 && p.vals[a].kind == valArena && p.vals[a].last < until {
					t.Errorf("%s reads %s, alive until step %d; waited for at step %d", s.name, p.vals[a].name, p.vals[a].last, k)
				}
			}
		}
	}
	// The executor waits where the plan says: no asynchronous gradient is under way
	// once a step that waits has run.
	waitsAt := map[string]bool{}
	for _, s := range waiting.p.steps {
		waitsAt[s.name] = s.waits
	}
	waited := 0
	waiting.p.trace = func(st StepTime) {
		if waitsAt[st.Step] {
			waited++
			if n := len(waiting.p.async.tasks); n != 0 {
				t.Errorf("%s waits, yet %d asynchronous gradients are under way after it", st.Step, n)
			}
		}
	}
	loss, grads := runBoth(t, m, plain, waiting, 32)
	if waited != len(waits) {
		t.Errorf("%d steps that wait ran, want %d", waited, len(waits))
	}
	if loss[0] != loss[1] {
		t.Errorf("loss %v with the waits, %v without", loss[1], loss[0])
	}
	for _, name := range m.TrainableNames() {
		if i := firstOtherBits(grads[1][name], grads[0][name]); i >= 0 {
			t.Errorf("%s[%d] = %v with the waits, %v without", name, i, grads[1][name][i], grads[0][name][i])
		}
	}
}
