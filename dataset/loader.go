package dataset

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// LoaderOptions configures a Loader.
type LoaderOptions struct {
	// BatchSize is the number of examples per batch (required, positive).
	BatchSize int
	// Shuffle draws a new example order every epoch (training); without it, batches follow
	// the collection's order (evaluation).
	Shuffle bool
	// Balanced draws each epoch's examples as PyTorch's WeightedRandomSampler with the
	// weights 1/(its class's count) does: as many draws as examples, with replacement,
	// each class equally likely at every draw (a class with fewer examples repeats them).
	// It replaces Shuffle. The draws depend only on Seed and the epoch; each draw's
	// augmentation on its position in the epoch, so that repeats differ.
	Balanced bool
	// DropLast drops the last batch when it is smaller than BatchSize; by default it is kept.
	DropLast bool
	// Seed drives the shuffle and the augmentation. Everything an epoch yields is a pure
	// function of (Seed, epoch, the collection, the options).
	Seed uint64
	// Workers is the number of decoding goroutines; 0 means GOMAXPROCS. The output does not
	// depend on it.
	Workers int
	// Prefetch is how many batches are prepared ahead of the consumer; 0 means 2.
	Prefetch int
	// Preprocess is the conversion to the model's input tensor.
	Preprocess Preprocess
	// Augment is the training augmentation; leave it zero for evaluation.
	Augment Augment
	// Draft lets the loader decode a JPEG at 1/2, 1/4 or 1/8 of its size in the DCT domain
	// when its crop or resize reduces it at least that much (Pillow's draft mode). It takes
	// a 12-megapixel photo to a 224-pixel input several times faster, with pixels slightly
	// different from a full decode's: use it for training, not for evaluation.
	Draft bool
	// CacheBytes keeps the prepared 8-bit inputs of a loader without augmentation (a
	// validation or test loader with a Resize) in memory, up to this many bytes (an image
	// of 3 x 224 x 224 takes 150 KB), so that later epochs skip decoding and resizing them;
	// 0: no cache. The batches are the same with or without it.
	CacheBytes int64
	// Shard makes every batch hold only its share of the batch it would be without it:
	// of a batch of n examples, those from Index*n/Count to (Index+1)*n/Count, so that
	// the shards of Count loaders over the same collection with the same options, taken
	// in order, are the batch one loader gives (data-parallel training: each rank
	// prepares and trains on its share). A shard may be empty (a short last batch over
	// many ranks): its batch has N 0. The zero value is the whole batch. Mixup and Cutmix
	// blend neighbours across the whole batch and take no shard.
	Shard Shard
}

// Shard is one of Count parts of every batch (LoaderOptions.Shard).
type Shard struct {
	Index, Count int
}

// Bounds returns the part [lo, hi) of a batch of n examples that the shard holds.
func (s Shard) Bounds(n int) (lo, hi int) {
	if s.Count <= 1 {
		return 0, n
	}
	return s.Index * n / s.Count, (s.Index + 1) * n / s.Count
}

// Batch is one batch of preprocessed images.
//
// Its slices belong to the Loader and are reused once the loop body that received the batch
// returns: copy what must outlive the iteration.
type Batch struct {
	// Images holds N images as float32 NCHW: N x Channels x Height x Width.
	Images []float32
	// Labels holds the N class indices.
	Labels []int
	// Indices holds the N examples' indices in the loader's collection.
	Indices []int
	// N is the number of examples, BatchSize except maybe for the last batch.
	N int
	// Index is the batch's position in its epoch, from 0.
	Index int
	// Mix is how Mixup or Cutmix blended the batch; nil when they are off.
	Mix *Mix
}

// Mix says how a batch was blended: image i is Lambda of its own example (label
// Labels[i]) and 1-Lambda of its partner's (label PartnerLabels[i]), the example before it
// in the batch (the last for the first). Train against the blended one-hot targets, and
// count image i as correct when the prediction is its dominant label (Dominant).
type Mix struct {
	Lambda        float64
	PartnerLabels []int
	Cutmix        bool // a box pasted rather than the images blended
}

// Dominant is the label that weighs most in image i (its own on a tie).
func (m *Mix) Dominant(labels []int, i int) int {
	if m == nil || m.Lambda >= 0.5 {
		return labels[i]
	}
	return m.PartnerLabels[i]
}

// Loader yields batches of preprocessed images, decoded by a pool of goroutines a bounded
// number of batches ahead of the consumer. It is safe for concurrent use; each Epoch
// iteration has its own goroutines.
type Loader struct {
	data    Examples
	opts    LoaderOptions
	t       *transform
	size    int // floats per image
	batches int

	mu   sync.Mutex
	free []*batchBuf // buffers kept between epochs

	cache *inputCache // nil without CacheBytes, or when it cannot apply
}

// inputCache holds prepared 8-bit inputs by example index, within a byte budget.
type inputCache struct {
	mu      sync.Mutex
	left    int64
	entries map[int]picture
}

func (c *inputCache) get(ix int) (picture, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.entries[ix]
	return p, ok
}

// put keeps a copy of p if the budget allows.
func (c *inputCache) put(ix int, p *picture) {
	n := int64(p.c * p.w * p.h)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[ix]; ok || n > c.left {
		return
	}
	c.left -= n
	c.entries[ix] = picture{c: p.c, w: p.w, h: p.h, pix: append([]uint8(nil), p.pix[:n]...)}
}

// NewLoader validates opts and returns a Loader over data. An empty collection gives a
// loader with no batches.
func NewLoader(data Examples, opts LoaderOptions) (*Loader, error) {
	if opts.BatchSize <= 0 {
		return nil, fmt.Errorf("dataset: loader batch size %d, want a positive number", opts.BatchSize)
	}
	if opts.Workers < 0 || opts.Prefetch < 0 {
		return nil, fmt.Errorf("dataset: loader workers %d and prefetch %d must not be negative", opts.Workers, opts.Prefetch)
	}
	if opts.Workers == 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.Prefetch == 0 {
		opts.Prefetch = 2
	}
	t, err := opts.Preprocess.compile(opts.Augment)
	if err != nil {
		return nil, err
	}
	if err := opts.Augment.ValidateBatch(opts.BatchSize); err != nil {
		return nil, err
	}
	if sh := opts.Shard; sh.Count < 0 || sh.Count > 0 && (sh.Index < 0 || sh.Index >= sh.Count) {
		return nil, fmt.Errorf("dataset: loader shard %d of %d: want an index from 0 to the count less one", sh.Index, sh.Count)
	}
	if opts.Shard.Count > 1 && opts.Augment.Mixes() {
		return nil, &AugmentError{Key: "mixup", Msg: "mixup and cutmix blend each image with its neighbour in the whole batch: they cannot be split over ranks (run them in one process)"}
	}
	l := &Loader{data: data, opts: opts, t: t, size: opts.Preprocess.Size()}
	if opts.CacheBytes > 0 && t.eightBit && !t.augments {
		l.cache = &inputCache{left: opts.CacheBytes, entries: map[int]picture{}}
	}
	n := data.Len()
	l.batches = n / opts.BatchSize
	if !opts.DropLast && n%opts.BatchSize != 0 {
		l.batches++
	}
	return l, nil
}

// Len is the number of batches per epoch.
func (l *Loader) Len() int { return l.batches }

// NumExamples is the number of examples an epoch yields (fewer than the collection's with
// DropLast).
func (l *Loader) NumExamples() int {
	if l.opts.DropLast {
		return l.batches * l.opts.BatchSize
	}
	return l.data.Len()
}

// Order is the order in which epoch visits the collection's examples (indices 0..n-1 for a
// collection of n): a seeded permutation with Shuffle (PCG keyed by Seed and epoch,
// Fisher-Yates), the identity without. With DropLast the tail of it beyond the last full
// batch is not visited.
func (l *Loader) Order(epoch int) []int {
	order := make([]int, l.data.Len())
	if l.opts.Balanced {
		r := newPCG(deriveKey(l.opts.Seed, purposeBalance, uint64(int64(epoch))))
		byClass := l.byClass()
		for i := range order {
			c := byClass[bounded(r.Uint64(), len(byClass))]
			order[i] = c[bounded(r.Uint64(), len(c))]
		}
		return order
	}
	for i := range order {
		order[i] = i
	}
	if l.opts.Shuffle {
		shuffleInts(newPCG(deriveKey(l.opts.Seed, purposeShuffle, uint64(int64(epoch)))), order)
	}
	return order
}

// byClass lists the examples of each class that has any, in label order.
func (l *Loader) byClass() [][]int {
	m := map[int][]int{}
	var labels []int
	for i := range l.data.Len() {
		y := l.data.Label(i)
		if _, ok := m[y]; !ok {
			labels = append(labels, y)
		}
		m[y] = append(m[y], i)
	}
	slices.Sort(labels)
	out := make([][]int, len(labels))
	for i, y := range labels {
		out[i] = m[y]
	}
	return out
}

// Epoch iterates over one epoch's batches:
//
//	for b, err := range loader.Epoch(ctx, epoch) {
//		if err != nil { return err }
//		... use b until the loop body returns ...
//	}
//
// The batches, their order and their augmentation depend only on the loader's options and
// epoch (not on the number of workers or on timing), so resuming at an epoch boundary
// reproduces a run exactly: number epochs globally across a run's stages. An error (a file
// that fails to decode, or ctx's cancellation) is yielded once, with a zero Batch, and ends
// the iteration. Goroutines start when the iteration does and have all returned when it
// ends, including when the loop is left early.
func (l *Loader) Epoch(ctx context.Context, epoch int) iter.Seq2[Batch, error] {
	return l.EpochFrom(ctx, epoch, 0)
}

// EpochFrom is Epoch starting at batch start (for resuming mid-epoch): it yields exactly the
// batches start, start+1, ... that Epoch yields, without decoding the earlier ones.
func (l *Loader) EpochFrom(ctx context.Context, epoch, start int) iter.Seq2[Batch, error] {
	return func(yield func(Batch, error) bool) {
		if start < 0 {
			yield(Batch{}, fmt.Errorf("dataset: loader start batch %d is negative", start))
			return
		}
		if start >= l.batches {
			return
		}
		if err := ctx.Err(); err != nil {
			yield(Batch{}, err)
			return
		}
		l.run(ctx, epoch, start, yield)
	}
}

// batchBuf is one batch being prepared.
type batchBuf struct {
	images  []float32
	labels  []int
	indices []int
	n       int
	index   int
	pos     int // the epoch position of the first example (with a shard, its share's)
	errs    []error
	pending atomic.Int32
	done    chan struct{}
}

type job struct {
	buf  *batchBuf
	slot int
}

func (l *Loader) getBuf() *batchBuf {
	l.mu.Lock()
	defer l.mu.Unlock()
	if k := len(l.free); k > 0 {
		b := l.free[k-1]
		l.free = l.free[:k-1]
		return b
	}
	bs := l.opts.BatchSize
	return &batchBuf{
		images:  make([]float32, bs*l.size),
		labels:  make([]int, bs),
		indices: make([]int, bs),
		errs:    make([]error, bs),
	}
}

func (l *Loader) putBufs(bufs []*batchBuf) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// Keep at most one epoch's worth of buffers.
	for _, b := range bufs {
		if len(l.free) < l.opts.Prefetch+1 {
			l.free = append(l.free, b)
		}
	}
}

func (l *Loader) run(parent context.Context, epoch, start int, yield func(Batch, error) bool) {
	ctx, cancel := context.WithCancel(parent)
	var wg sync.WaitGroup
	nbuf := min(l.opts.Prefetch+1, l.batches-start)
	owned := make([]*batchBuf, 0, nbuf)
	free := make(chan *batchBuf, nbuf)
	for range nbuf {
		b := l.getBuf()
		owned = append(owned, b)
		free <- b
	}
	defer func() {
		cancel()
		wg.Wait()
		l.putBufs(owned)
	}()

	order := l.Order(epoch)
	bs := l.opts.BatchSize
	n := len(order)
	ready := make(chan *batchBuf, nbuf)
	jobs := make(chan job, bs)

	// The dispatcher takes a free buffer for each batch in order, queues it for the consumer
	// and hands its examples to the workers.
	wg.Go(func() {
		defer close(ready)
		defer close(jobs)
		for bi := start; bi < l.batches; bi++ {
			var buf *batchBuf
			select {
			case buf = <-free:
			case <-ctx.Done():
				return
			}
			lo := bi * bs
			hi := min(lo+bs, n)
			slo, shi := l.opts.Shard.Bounds(hi - lo)
			lo, hi = lo+slo, lo+shi
			buf.n, buf.index, buf.pos = hi-lo, bi, lo
			copy(buf.indices, order[lo:hi])
			for k, ix := range buf.indices[:buf.n] {
				buf.labels[k] = l.data.Label(ix)
			}
			clear(buf.errs)
			buf.pending.Store(int32(buf.n))
			buf.done = make(chan struct{})
			if buf.n == 0 {
				close(buf.done) // an empty shard: nothing to prepare
			}
			ready <- buf // never blocks: at most nbuf buffers exist
			for k := range buf.n {
				select {
				case jobs <- job{buf, k}:
				case <-ctx.Done():
					return
				}
			}
		}
	})

	for range min(l.opts.Workers, bs*nbuf) {
		wg.Go(func() {
			var s scratch
			for j := range jobs {
				b := j.buf
				if ctx.Err() == nil {
					b.errs[j.slot] = l.prepare(b.images[j.slot*l.size:(j.slot+1)*l.size], b.indices[j.slot], b.pos+j.slot, epoch, &s)
				} else {
					b.errs[j.slot] = fmt.Errorf("dataset: loader stopped: %w", context.Cause(ctx))
				}
				if b.pending.Add(-1) == 0 {
					close(b.done)
				}
			}
		})
	}

	delivered := 0
	var save []float32 // Mixup's and Cutmix's copy of an image
	for buf := range ready {
		select {
		case <-buf.done:
		case <-ctx.Done():
			yield(Batch{}, fmt.Errorf("dataset: loader stopped: %w", context.Cause(ctx)))
			return
		}
		for _, err := range buf.errs[:buf.n] {
			if err != nil {
				yield(Batch{}, err)
				return
			}
		}
		b := Batch{
			Images:  buf.images[:buf.n*l.size],
			Labels:  buf.labels[:buf.n],
			Indices: buf.indices[:buf.n],
			N:       buf.n,
			Index:   buf.index,
		}
		if l.t.aug.Mixes() {
			save = grow(save, l.size)
			key := deriveKey(l.opts.Seed, purposeMix, uint64(int64(epoch)), uint64(buf.index))
			b.Mix = l.t.aug.mixBatch(b.Images, b.Labels, b.N, l.t.c, l.t.h, l.t.w, key, save)
		}
		if !yield(b, nil) {
			return
		}
		delivered++
		free <- buf // never blocks: the channel holds every buffer
	}
	if delivered < l.batches-start {
		err := context.Cause(ctx)
		if err == nil {
			err = errors.New("dataset: loader stopped early")
		}
		yield(Batch{}, fmt.Errorf("dataset: loader stopped: %w", err))
	}
}

// prepare decodes and preprocesses one example into dst.
func (l *Loader) prepare(dst []float32, ix, pos, epoch int, s *scratch) error {
	if l.cache != nil {
		if p, ok := l.cache.get(ix); ok {
			l.t.normalise8(dst, &p)
			return nil
		}
	}
	var in input
	if f, ok := l.data.(Files); ok {
		if path := f.File(ix); path != "" {
			data, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("dataset: %w", err)
			}
			in.data = data
		}
	}
	if in.data == nil {
		img, err := l.data.Image(ix)
		if err != nil {
			return err
		}
		in.img = img
	}
	key := deriveKey(l.opts.Seed, purposeAugment, uint64(int64(epoch)), uint64(ix))
	if l.opts.Balanced {
		key = deriveKey(l.opts.Seed, purposeAugment, uint64(int64(epoch)), uint64(pos), 1)
	}
	if err := l.t.run(dst, in, key, l.t.augments, l.opts.Draft, s); err != nil {
		return fmt.Errorf("dataset: decoding %s: %w", l.data.Name(ix), err)
	}
	if l.cache != nil {
		l.cache.put(ix, &s.canvas) // run leaves the 8-bit input there
	}
	return nil
}
