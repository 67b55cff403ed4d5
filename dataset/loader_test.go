package dataset

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// epochDigest runs one epoch and returns a hash of everything it yielded plus the batch sizes.
func epochDigest(t *testing.T, l *Loader, epoch, start int) (string, []int) {
	t.Helper()
	h := sha256.New()
	var sizes []int
	for b, err := range l.EpochFrom(context.Background(), epoch, start) {
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Images) != b.N*l.size || len(b.Labels) != b.N || len(b.Indices) != b.N {
			t.Fatalf("batch %d: N %d but %d floats, %d labels, %d indices", b.Index, b.N, len(b.Images), len(b.Labels), len(b.Indices))
		}
		binary.Write(h, binary.LittleEndian, int64(b.Index))
		binary.Write(h, binary.LittleEndian, b.Images)
		for k := range b.N {
			binary.Write(h, binary.LittleEndian, [2]int64{int64(b.Labels[k]), int64(b.Indices[k])})
		}
		sizes = append(sizes, b.N)
	}
	return fmt.Sprintf("%x", h.Sum(nil)), sizes
}

func TestLoaderDeterministicAcrossWorkers(t *testing.T) {
	src, err := OpenImageFolder(makeFolder(t, []string{"a", "b", "c"}, 7), Options{})
	if err != nil {
		t.Fatal(err)
	}
	opts := LoaderOptions{
		BatchSize: 4, Shuffle: true, Seed: 99,
		Preprocess: Preprocess{Mode: ModeTorch, Channels: 3, Height: 32, Width: 32},
		Augment:    Augment{HFlip: true, PadCrop: 4},
	}
	digests := map[int]string{}
	for _, wp := range [][2]int{{1, 1}, {4, 2}, {4, 5}, {3, 1}} {
		o := opts
		o.Workers, o.Prefetch = wp[0], wp[1]
		l, err := NewLoader(src, o)
		if err != nil {
			t.Fatal(err)
		}
		for epoch := range 2 {
			d, sizes := epochDigest(t, l, epoch, 0)
			if !slices.Equal(sizes, []int{4, 4, 4, 4, 4, 1}) {
				t.Fatalf("batch sizes %v", sizes)
			}
			if prev, ok := digests[epoch]; ok && prev != d {
				t.Fatalf("epoch %d differs with %d workers, prefetch %d", epoch, wp[0], wp[1])
			}
			digests[epoch] = d
		}
	}
	if digests[0] == digests[1] {
		t.Fatal("epochs 0 and 1 are identical")
	}

	// The content is what Preprocess and the example's augmentation give.
	l, _ := NewLoader(src, opts)
	tr, _ := opts.Preprocess.compile(opts.Augment)
	flips := 0
	for b, err := range l.Epoch(context.Background(), 3) {
		if err != nil {
			t.Fatal(err)
		}
		for k, ix := range b.Indices {
			img, err := src.Image(ix)
			if err != nil {
				t.Fatal(err)
			}
			d := tr.draw(deriveKey(opts.Seed, purposeAugment, 3, uint64(ix)))
			if d.flip {
				flips++
			}
			want := make([]float32, l.size)
			var s scratch
			tr.apply(want, img, &s, d)
			if !slices.Equal(b.Images[k*l.size:(k+1)*l.size], want) {
				t.Fatalf("batch %d example %d (%s) differs from its preprocessing", b.Index, k, src.Name(ix))
			}
			if b.Labels[k] != src.Label(ix) {
				t.Fatalf("label mismatch")
			}
		}
	}
	if flips == 0 || flips == src.Len() {
		t.Fatalf("%d of %d flipped", flips, src.Len())
	}
}

func TestLoaderBatches(t *testing.T) {
	src := fakeExamples{make([]int, 10)}
	p := Preprocess{Mode: ModeNone, Channels: 1, Height: 4, Width: 4}
	l, err := NewLoader(src, LoaderOptions{BatchSize: 4, Preprocess: p})
	if err != nil {
		t.Fatal(err)
	}
	if l.Len() != 3 || l.NumExamples() != 10 {
		t.Fatalf("Len %d NumExamples %d", l.Len(), l.NumExamples())
	}
	// Evaluation order: the collection's, every epoch.
	var seen []int
	for b, err := range l.Epoch(context.Background(), 5) {
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, b.Indices...)
		for k, ix := range b.Indices {
			if b.Images[k*16+1] != float32(ix) { // pixel 1 holds the index
				t.Fatalf("example %d has the wrong image", ix)
			}
		}
	}
	if !slices.Equal(seen, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
		t.Fatalf("evaluation order %v", seen)
	}
	_, sizes := epochDigest(t, l, 0, 0)
	if !slices.Equal(sizes, []int{4, 4, 2}) {
		t.Fatalf("sizes %v", sizes)
	}

	l, _ = NewLoader(src, LoaderOptions{BatchSize: 4, DropLast: true, Preprocess: p})
	if l.Len() != 2 || l.NumExamples() != 8 {
		t.Fatalf("DropLast: Len %d NumExamples %d", l.Len(), l.NumExamples())
	}
	if _, sizes := epochDigest(t, l, 0, 0); !slices.Equal(sizes, []int{4, 4}) {
		t.Fatalf("DropLast sizes %v", sizes)
	}
	// Exact multiple, batch larger than the data, empty data.
	for _, tc := range []struct{ n, bs, batches int }{{8, 4, 2}, {3, 8, 1}, {0, 4, 0}} {
		l, _ := NewLoader(fakeExamples{make([]int, tc.n)}, LoaderOptions{BatchSize: tc.bs, Preprocess: p})
		if _, sizes := epochDigest(t, l, 0, 0); len(sizes) != tc.batches || l.Len() != tc.batches {
			t.Fatalf("n %d batch %d: sizes %v, Len %d", tc.n, tc.bs, sizes, l.Len())
		}
	}

	if _, err := NewLoader(src, LoaderOptions{BatchSize: 0, Preprocess: p}); err == nil {
		t.Fatal("batch size 0 accepted")
	}
	if _, err := NewLoader(src, LoaderOptions{BatchSize: 2, Preprocess: Preprocess{Mode: "x", Channels: 1, Height: 2, Width: 2}}); err == nil {
		t.Fatal("bad mode accepted")
	}
}

func TestLoaderShuffle(t *testing.T) {
	src := fakeExamples{make([]int, 100)}
	p := Preprocess{Mode: ModeNone, Channels: 1, Height: 4, Width: 4}
	l, _ := NewLoader(src, LoaderOptions{BatchSize: 8, Shuffle: true, Seed: 1, Preprocess: p})
	l2, _ := NewLoader(src, LoaderOptions{BatchSize: 8, Shuffle: true, Seed: 1, Preprocess: p, Workers: 1})
	other, _ := NewLoader(src, LoaderOptions{BatchSize: 8, Shuffle: true, Seed: 2, Preprocess: p})
	o0, o1 := l.Order(0), l.Order(1)
	for _, o := range [][]int{o0, o1} {
		s := slices.Clone(o)
		slices.Sort(s)
		for i, v := range s {
			if v != i {
				t.Fatal("order is not a permutation")
			}
		}
	}
	if slices.Equal(o0, o1) || slices.Equal(o0, other.Order(0)) {
		t.Fatal("orders do not change with the epoch or the seed")
	}
	if !slices.Equal(o0, l2.Order(0)) {
		t.Fatal("same seed, different order")
	}
	var seen []int
	for b, err := range l.Epoch(context.Background(), 1) {
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, b.Indices...)
	}
	if !slices.Equal(seen, o1) {
		t.Fatal("the epoch does not follow Order")
	}
}

func TestLoaderEpochFrom(t *testing.T) {
	src := fakeExamples{make([]int, 37)}
	l, _ := NewLoader(src, LoaderOptions{
		BatchSize: 5, Shuffle: true, Seed: 3,
		Preprocess: Preprocess{Mode: ModeTF, Channels: 3, Height: 6, Width: 6},
		Augment:    Augment{HFlip: true, PadCrop: 1},
	})
	var all [][]float32
	for b, err := range l.Epoch(context.Background(), 2) {
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, slices.Clone(b.Images))
	}
	k := 0
	for b, err := range l.EpochFrom(context.Background(), 2, 5) {
		if err != nil {
			t.Fatal(err)
		}
		if b.Index != 5+k || !slices.Equal(b.Images, all[5+k]) {
			t.Fatalf("EpochFrom batch %d differs from Epoch's", b.Index)
		}
		k++
	}
	if k != len(all)-5 {
		t.Fatalf("EpochFrom gave %d batches, want %d", k, len(all)-5)
	}
	for range l.EpochFrom(context.Background(), 2, 100) {
		t.Fatal("EpochFrom past the end yielded")
	}
}

// slowExamples delays every image so that workers are busy when the consumer leaves.
type slowExamples struct {
	fakeExamples
	delay time.Duration
	calls *atomic.Int64
	fail  int // index whose Image fails, or -1
}

func (s slowExamples) Image(i int) (image.Image, error) {
	s.calls.Add(1)
	time.Sleep(s.delay)
	if i == s.fail {
		return nil, fmt.Errorf("decoding %s: broken", s.Name(i))
	}
	return s.fakeExamples.Image(i)
}

func waitGoroutines(t *testing.T, baseline int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= baseline {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines, baseline %d:\n%s", n, baseline, buf)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLoaderNoLeaks(t *testing.T) {
	calls := &atomic.Int64{}
	src := slowExamples{fakeExamples{make([]int, 400)}, time.Millisecond, calls, -1}
	p := Preprocess{Mode: ModeNone, Channels: 1, Height: 4, Width: 4}
	l, err := NewLoader(src, LoaderOptions{BatchSize: 8, Shuffle: true, Workers: 4, Prefetch: 2, Preprocess: p})
	if err != nil {
		t.Fatal(err)
	}
	baseline := runtime.NumGoroutine()

	// Leaving the loop early.
	n := 0
	for _, err := range l.Epoch(context.Background(), 0) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		if n == 2 {
			break
		}
	}
	waitGoroutines(t, baseline)
	// Prefetch is bounded: at most (2 consumed + 1 held + 2 ahead) batches were decoded.
	if c := calls.Load(); c > 5*8 {
		t.Fatalf("%d images decoded for 2 batches with prefetch 2", c)
	}

	// Cancelling the context mid-epoch.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var gotErr error
	n = 0
	errs := 0
	for _, err := range l.Epoch(ctx, 1) {
		if err != nil {
			gotErr = err
			errs++
			continue // the iterator must stop by itself after an error
		}
		n++
		if n == 3 {
			cancel()
		}
	}
	if !errors.Is(gotErr, context.Canceled) || errs != 1 {
		t.Fatalf("after cancel: %d errors, last %v", errs, gotErr)
	}
	waitGoroutines(t, baseline)

	// A context cancelled before the start.
	gotErr = nil
	for _, err := range l.Epoch(ctx, 2) {
		gotErr = err
	}
	if !errors.Is(gotErr, context.Canceled) {
		t.Fatalf("cancelled context: %v", gotErr)
	}

	// A timeout while workers are busy.
	tctx, tcancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer tcancel()
	gotErr = nil
	for _, err := range l.Epoch(tctx, 3) {
		if err != nil {
			gotErr = err
		}
	}
	if !errors.Is(gotErr, context.DeadlineExceeded) {
		t.Fatalf("timeout: %v", gotErr)
	}
	waitGoroutines(t, baseline)

	// A full epoch, and a panic in the loop body.
	epochDigest(t, l, 4, 0)
	func() {
		defer func() { recover() }()
		for range l.Epoch(context.Background(), 5) {
			panic("consumer bug")
		}
	}()
	waitGoroutines(t, baseline)
}

func TestLoaderDecodeError(t *testing.T) {
	for _, workers := range []int{1, 4} {
		calls := &atomic.Int64{}
		src := slowExamples{fakeExamples{make([]int, 50)}, 0, calls, 23}
		l, _ := NewLoader(src, LoaderOptions{BatchSize: 10, Workers: workers, Preprocess: Preprocess{Mode: ModeNone, Channels: 1, Height: 4, Width: 4}})
		baseline := runtime.NumGoroutine()
		good := 0
		var gotErr error
		for _, err := range l.Epoch(context.Background(), 0) {
			if err != nil {
				gotErr = err
				continue
			}
			good++
		}
		if good != 2 {
			t.Fatalf("%d workers: %d good batches before the error, want 2", workers, good)
		}
		contains(t, gotErr, "fake[23]", "broken")
		waitGoroutines(t, baseline)
	}
}

// TestLoaderFashionMNIST batches real data and checks it against Preprocess.Apply.
func TestLoaderFashionMNIST(t *testing.T) {
	src := fashionMNIST(t, "t10k")
	_, sub := Split(src, 0.05, 1) // 500 examples, 50 per class
	if sub.Len() != 500 {
		t.Fatalf("%d examples", sub.Len())
	}
	p := Preprocess{Mode: ModeTorch, Mean: []float64{0.286}, Std: []float64{0.353}, Channels: 3, Height: 32, Width: 32}
	l, err := NewLoader(sub, LoaderOptions{BatchSize: 64, Preprocess: p})
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for b, err := range l.Epoch(context.Background(), 0) {
		if err != nil {
			t.Fatal(err)
		}
		for k, ix := range b.Indices {
			img, _ := sub.Image(ix)
			want, _ := p.Apply(img)
			if !slices.Equal(b.Images[k*p.Size():(k+1)*p.Size()], want) {
				t.Fatalf("example %s differs", sub.Name(ix))
			}
			// Grey replicated: the three channels are equal.
			plane := 32 * 32
			x := b.Images[k*p.Size():]
			if x[5] != x[plane+5] || x[5] != x[2*plane+5] {
				t.Fatal("channels differ for a grey image")
			}
			if b.Labels[k] != sub.Label(ix) {
				t.Fatal("label")
			}
		}
		seen += b.N
	}
	if seen != 500 {
		t.Fatalf("%d examples seen", seen)
	}
	// Background pixels (0) map to -0.286/0.353.
	img, _ := src.Image(0)
	x, _ := p.Apply(img)
	if math.Abs(float64(x[0])+0.286/0.353) > 1e-6 {
		t.Fatalf("corner pixel %v", x[0])
	}
}

// A cached evaluation loader gives the same batches as an uncached one, every epoch, and
// within its budget keeps only as many inputs as fit.
func TestLoaderInputCache(t *testing.T) {
	dir := makeFolder(t, []string{"a", "b"}, 7)
	src, err := OpenImageFolder(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := Preprocess{Mode: ModeTorch, Channels: 3, Height: 20, Width: 18, Resize: ResizeCrop}
	plain, err := NewLoader(src, LoaderOptions{BatchSize: 3, Preprocess: p})
	if err != nil {
		t.Fatal(err)
	}
	budget := int64(5 * p.Size()) // five to fifteen of the fourteen inputs (grey ones take a third)
	cached, err := NewLoader(src, LoaderOptions{BatchSize: 3, Preprocess: p, CacheBytes: budget})
	if err != nil {
		t.Fatal(err)
	}
	if cached.cache == nil {
		t.Fatal("no cache")
	}
	var want []float32
	for b, err := range plain.Epoch(context.Background(), 0) {
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, b.Images...)
	}
	for epoch := range 3 {
		var got []float32
		for b, err := range cached.Epoch(context.Background(), epoch) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, b.Images...)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("epoch %d: the cached loader's batches differ", epoch)
		}
	}
	var used int64
	for _, e := range cached.cache.entries {
		used += int64(len(e.pix))
	}
	if n := len(cached.cache.entries); n < 5 || n == src.Len() || used+cached.cache.left != budget || cached.cache.left >= int64(p.Size()) {
		t.Fatalf("%d inputs cached in %d bytes, %d left of %d", n, used, cached.cache.left, budget)
	}
	// Augmenting loaders and the float path do not cache.
	for _, opts := range []LoaderOptions{
		{BatchSize: 3, Preprocess: p, CacheBytes: budget, Augment: Augment{HFlip: true}},
		{BatchSize: 3, Preprocess: Preprocess{Mode: ModeTorch, Channels: 3, Height: 20, Width: 18}, CacheBytes: budget},
	} {
		l, err := NewLoader(src, opts)
		if err != nil {
			t.Fatal(err)
		}
		if l.cache != nil {
			t.Errorf("%+v: a cache", opts)
		}
	}
}

// labelList is an Examples of given labels (no pictures needed to test an order).
type labelList []int

func (l labelList) Len() int                       { return len(l) }
func (l labelList) Label(i int) int                { return l[i] }
func (l labelList) Name(i int) string              { return fmt.Sprint("example", i) }
func (l labelList) Image(int) (image.Image, error) { return randomGray(1, 2, 2), nil }

// The balanced sampler draws as many examples as there are, each class equally often in
// expectation and each example of a class equally often, as PyTorch's
// WeightedRandomSampler with 1/count weights does: over 200 epochs of a 100/20/5 split the
// class counts and the rarest class's example counts pass a chi-square test of uniformity
// at the 0.001 level; and the order is a function of the seed and the epoch.
func TestBalancedSampler(t *testing.T) {
	var labels labelList
	for c, n := range []int{100, 20, 5} {
		for range n {
			labels = append(labels, c)
		}
	}
	l, err := NewLoader(labels, LoaderOptions{BatchSize: 8, Balanced: true, Seed: 4, Preprocess: Preprocess{Mode: ModeNone, Channels: 1, Height: 2, Width: 2}})
	if err != nil {
		t.Fatal(err)
	}
	classCount := make([]float64, 3)
	rare := make([]float64, 5) // examples 120..124
	for epoch := range 200 {
		order := l.Order(epoch)
		if len(order) != len(labels) {
			t.Fatalf("%d draws, want %d", len(order), len(labels))
		}
		if !slices.Equal(order, l.Order(epoch)) {
			t.Fatal("the order of an epoch changes")
		}
		for _, ix := range order {
			classCount[labels[ix]]++
			if ix >= 120 {
				rare[ix-120]++
			}
		}
	}
	chi2 := func(obs []float64) float64 {
		var total float64
		for _, o := range obs {
			total += o
		}
		e := total / float64(len(obs))
		var x float64
		for _, o := range obs {
			x += (o - e) * (o - e) / e
		}
		return x
	}
	// Critical values of chi-square at 0.001: 13.82 (2 degrees of freedom), 18.47 (4).
	if x := chi2(classCount); x > 13.82 {
		t.Errorf("class counts %v: chi-square %.2f > 13.82", classCount, x)
	}
	if x := chi2(rare); x > 18.47 {
		t.Errorf("the rare class's examples drawn %v times: chi-square %.2f > 18.47", rare, x)
	}
	if slices.Equal(l.Order(0), l.Order(1)) {
		t.Error("two epochs draw the same order")
	}
}

// TestLoaderShards checks that the shards of a batch, taken in order, are the batch the
// unsharded loader gives (the same examples, labels and augmented pixels: every draw is
// keyed by the example, not by its place in a batch), that a shard of a short last batch
// may be empty without hanging the epoch, and that a mixing augmentation refuses shards.
func TestLoaderShards(t *testing.T) {
	src := fakeExamples{make([]int, 13)}
	opts := LoaderOptions{
		BatchSize: 4, Shuffle: true, Seed: 5,
		Preprocess: Preprocess{Mode: ModeTF, Channels: 3, Height: 6, Width: 6},
		Augment:    Augment{HFlip: true, PadCrop: 1},
	}
	for _, balanced := range []bool{false, true} {
		opts.Balanced = balanced // the balanced sampler keys augmentation by position
		checkShards(t, src, opts)
	}
	o := opts
	o.Augment, o.Shard = Augment{Mixup: 0.2}, Shard{Index: 0, Count: 2}
	if _, err := NewLoader(src, o); err == nil || !strings.Contains(err.Error(), "ranks") {
		t.Errorf("mixup over shards: error %v", err)
	}
	o.Augment, o.Shard = Augment{}, Shard{Index: 2, Count: 2}
	if _, err := NewLoader(src, o); err == nil {
		t.Error("shard 2 of 2 accepted")
	}
}

func checkShards(t *testing.T, src Examples, opts LoaderOptions) {
	t.Helper()
	whole, err := NewLoader(src, opts)
	if err != nil {
		t.Fatal(err)
	}
	var want []Batch
	for b, err := range whole.Epoch(context.Background(), 1) {
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, Batch{Images: slices.Clone(b.Images), Labels: slices.Clone(b.Labels), Indices: slices.Clone(b.Indices), N: b.N})
	}
	const count = 3
	got := make([]Batch, len(want))
	sizes := make([][]int, count)
	for r := range count {
		o := opts
		o.Shard = Shard{Index: r, Count: count}
		l, err := NewLoader(src, o)
		if err != nil {
			t.Fatal(err)
		}
		for b, err := range l.Epoch(context.Background(), 1) {
			if err != nil {
				t.Fatal(err)
			}
			g := &got[b.Index]
			g.Images = append(g.Images, b.Images...)
			g.Labels = append(g.Labels, b.Labels...)
			g.Indices = append(g.Indices, b.Indices...)
			g.N += b.N
			sizes[r] = append(sizes[r], b.N)
		}
	}
	for i := range want {
		if got[i].N != want[i].N || !slices.Equal(got[i].Images, want[i].Images) || !slices.Equal(got[i].Labels, want[i].Labels) || !slices.Equal(got[i].Indices, want[i].Indices) {
			t.Errorf("batch %d: the shards together differ from the whole batch", i)
		}
	}
	// 13 examples in batches of 4: the last batch holds 1, and only the last shard has it.
	if !slices.Equal(sizes[0], []int{1, 1, 1, 0}) || !slices.Equal(sizes[2], []int{2, 2, 2, 1}) {
		t.Errorf("shard sizes %v", sizes)
	}
}
