package kernels

import (
	"fmt"
	"math"
	"runtime"
	"testing"
)

func TestSoftmax(t *testing.T) {
	rng := newRNG(30)
	for _, sh := range [][2]int{{1, 1}, {3, 5}, {4, 10}, {2, 1}} {
		rows, cols := sh[0], sh[1]
		x, dy := randn(rng, rows*cols), randn(rng, rows*cols)
		for j := range x {
			x[j] *= 5
		}
		y := make([]float64, len(x))
		SoftmaxForward(rows, cols, x, y)
		for r := 0; r < rows; r++ {
			var z float64
			for _, v := range x[r*cols : (r+1)*cols] {
				z += math.Exp(v)
			}
			for c := 0; c < cols; c++ {
				if w := math.Exp(x[r*cols+c]) / z; math.Abs(y[r*cols+c]-w) > 1e-15 {
					t.Fatalf("%v: softmax[%d,%d] = %g, want %g", sh, r, c, y[r*cols+c], w)
				}
			}
		}
		dx := make([]float64, len(x))
		SoftmaxBackward(rows, cols, y, dy, dx)
		checkGrad(t, fmt.Sprintf("%v softmax dX", sh), x, dy, dx, func() []float64 { SoftmaxForward(rows, cols, x, y); return y })

		LogSoftmaxForward(rows, cols, x, y)
		ly := append([]float64{}, y...)
		LogSoftmaxBackward(rows, cols, ly, dy, dx)
		checkGrad(t, fmt.Sprintf("%v logsoftmax dX", sh), x, dy, dx, func() []float64 { LogSoftmaxForward(rows, cols, x, y); return y })
	}
	// Stability: huge logits neither overflow nor give NaN.
	x := []float64{1000, 1001, -1000, 0}
	y := make([]float64, 4)
	SoftmaxForward(1, 4, x, y)
	LogSoftmaxForward(1, 4, x, y[:])
	for _, v := range y {
		if math.IsNaN(v) || math.IsInf(v, 0) && v > 0 {
			t.Fatalf("unstable: %v", y)
		}
	}
	if math.Abs(y[1]-(-math.Log1p(math.Exp(-1)))) > 1e-12 {
		t.Errorf("logsoftmax of large logits: %v", y)
	}
	x32, y32 := []float32{80, 90, 100}, make([]float32, 3)
	SoftmaxForward(1, 3, x32, y32)
	if y32[2] < 0.99 || math.IsNaN(float64(y32[0])) {
		t.Errorf("float32 softmax of large logits: %v", y32)
	}
}

func TestSoftmaxCrossEntropy(t *testing.T) {
	rng := newRNG(31)
	n, k := 5, 4
	logits := randn(rng, n*k)
	for j := range logits {
		logits[j] *= 3
	}
	labels := []int64{0, 3, 1, 1, 2}
	for _, eps := range []float64{0, 0.1, 0.3} {
		loss := SoftmaxCrossEntropy(n, k, logits, labels, eps)
		// Definition: mean over rows of -sum_j target_j log softmax_j.
		ls := make([]float64, n*k)
		LogSoftmaxForward(n, k, logits, ls)
		want := 0.0
		for i := 0; i < n; i++ {
			for j := 0; j < k; j++ {
				tj := eps / float64(k)
				if j == int(labels[i]) {
					tj += 1 - eps
				}
				want -= tj * ls[i*k+j]
			}
		}
		want /= float64(n)
		if math.Abs(loss-want) > 1e-14 {
			t.Errorf("eps %g: loss %g, want %g", eps, loss, want)
		}
		d := make([]float64, n*k)
		SoftmaxCrossEntropyBackward(n, k, logits, labels, eps, 1.0, d)
		checkGrad(t, fmt.Sprintf("eps %g dLogits", eps), logits, []float64{1}, d, func() []float64 {
			return []float64{SoftmaxCrossEntropy(n, k, logits, labels, eps)}
		})
		SoftmaxCrossEntropyBackward(n, k, logits, labels, eps, 2.5, d)
		checkGrad(t, fmt.Sprintf("eps %g dLogits scaled", eps), logits, []float64{2.5}, d, func() []float64 {
			return []float64{SoftmaxCrossEntropy(n, k, logits, labels, eps)}
		})
	}
	defer func() {
		if recover() == nil {
			t.Error("label out of range did not panic")
		}
	}()
	SoftmaxCrossEntropy(1, 2, []float64{0, 1}, []int{2}, 0)
}

func TestAccuracy(t *testing.T) {
	logits := []float32{
		1, 3, 3, // tie: lowest index 1
		5, 0, 0,
		0, 0, 9,
		2, 2, 2, // all tied: 0
	}
	labels := []int32{1, 1, 2, 0}
	var out [4]int
	ArgmaxRows(4, 3, logits, out[:])
	if out != [4]int{1, 0, 2, 0} {
		t.Errorf("ArgmaxRows = %v", out)
	}
	if c := CorrectCount(4, 3, logits, labels); c != 3 {
		t.Errorf("CorrectCount = %d, want 3", c)
	}
	if a := Accuracy(4, 3, logits, labels); a != 0.75 {
		t.Errorf("Accuracy = %g, want 0.75", a)
	}
}

// TestSoftmaxRowsSplit checks that a matrix large enough to be split across the cores
// (an attention layer's rows) gives, bit for bit, what each row gives alone, for the
// four passes.
func TestSoftmaxRowsSplit(t *testing.T) {
	const rows, cols = 600, 197
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	if workers(rows, cols*16) < 2 {
		t.Fatal("the matrix is not split: the check is weak")
	}
	rng := newRNG(31)
	x64, dy64 := randn(rng, rows*cols), randn(rng, rows*cols)
	x, dy := make([]float32, len(x64)), make([]float32, len(dy64))
	for i := range x {
		x[i], dy[i] = float32(4*x64[i]), float32(dy64[i])
	}
	for _, pass := range []struct {
		name string
		run  func(rows int, x, dy, y []float32)
	}{
		{"softmax", func(n int, x, _, y []float32) { SoftmaxForward(n, cols, x, y) }},
		{"softmax backward", func(n int, x, dy, y []float32) { SoftmaxBackward(n, cols, x, dy, y) }},
		{"log-softmax", func(n int, x, _, y []float32) { LogSoftmaxForward(n, cols, x, y) }},
		{"log-softmax backward", func(n int, x, dy, y []float32) { LogSoftmaxBackward(n, cols, x, dy, y) }},
	} {
		whole := make([]float32, rows*cols)
		pass.run(rows, x, dy, whole)
		for r := 0; r < rows; r++ {
			one := make([]float32, cols)
			pass.run(1, x[r*cols:(r+1)*cols], dy[r*cols:(r+1)*cols], one)
			for c, v := range one {
				if math.Float32bits(v) != math.Float32bits(whole[r*cols+c]) {
					t.Fatalf("%s: row %d, column %d: %v split, %v alone", pass.name, r, c, whole[r*cols+c], v)
				}
			}
		}
	}
}

// TestSoftmaxFloat32EveryImplementation checks the float32 softmax (the exponentials in
// the vector loop of each implementation that has one, else math.Exp) against the
// float64 definition within 1e-6 relative to the row's largest probability, on rows of
// every remainder length, with large spreads (exponentials below e^-87, which are 0),
// -Inf (masked attention: probability 0) and NaN (the row's NaN kept); the vector
// instruction sets give the same bits.
func TestSoftmaxFloat32EveryImplementation(t *testing.T) {
	rng := newRNG(31)
	var rowsX [][]float64
	for _, cols := range []int{1, 7, 8, 15, 16, 17, 33, 197} {
		x := randn(rng, cols)
		for j := range x {
			x[j] *= 4
		}
		rowsX = append(rowsX, x)
		wide := append([]float64{}, x...)
		wide[0] = 200 // the others far below: e^-190 and less
		rowsX = append(rowsX, wide)
		masked := append([]float64{}, x...)
		for j := 1; j < cols; j += 3 {
			masked[j] = math.Inf(-1)
		}
		rowsX = append(rowsX, masked)
	}
	asm := 0
	var first [][]float32
	var firstName string
	forEachImplementation(t, func(t *testing.T) {
		var got [][]float32
		for ri, x := range rowsX {
			cols := len(x)
			y := make([]float32, cols)
			SoftmaxForward(1, cols, to32(x), y)
			x32 := to64(to32(x))
			mx := math.Inf(-1)
			for _, v := range x32 {
				mx = math.Max(mx, v)
			}
			var z float64
			for _, v := range x32 {
				z += math.Exp(v - mx)
			}
			for c, v := range x32 {
				if w := math.Exp(v-mx) / z; math.Abs(float64(y[c])-w) > 1e-6/z { // 1/z: the row's largest
					t.Fatalf("row %d (%d columns): softmax[%d] = %g, want %g", ri, cols, c, y[c], w)
				}
			}
			got = append(got, y)
		}
		nan := []float32{1, float32(math.NaN()), 2}
		SoftmaxForward(1, 3, nan, nan)
		if nan[1] == nan[1] {
			t.Errorf("softmax of a row with NaN: %v", nan)
		}
		if kern := packedKernel[float32](); kern != nil && kern.expShift != nil {
			asm++
			if first == nil {
				first, firstName = got, Current()
				return
			}
			for ri := range got {
				for c := range got[ri] {
					if math.Float32bits(got[ri][c]) != math.Float32bits(first[ri][c]) {
						t.Fatalf("row %d: softmax[%d] = %g on %s, %g on %s", ri, c, got[ri][c], Current(), first[ri][c], firstName)
					}
				}
			}
		}
	})
	if want := len(asmKernels()); asm != want {
		t.Errorf("%d implementations ran the softmax's vector loop; this CPU has %d", asm, want)
	}
}
