package distrib

import (
	"fmt"
	"sync"
	"time"
)

// NewLocal returns the n ranks of one group inside this process, to be used from n
// goroutines: the collectives of data-parallel training without MPI, for tests. The
// sums are taken in rank order, so every rank gets the same bits, as MPI's reductions
// give two ranks. A collective that the other ranks do not join within timeout is a
// *TimeoutError.
func NewLocal(n int, timeout time.Duration) []Comm {
	g := &localGroup{n: n, timeout: timeout, bufs: make([]any, n)}
	g.cond = sync.NewCond(&g.mu)
	out := make([]Comm, n)
	for r := range n {
		out[r] = &local{g: g, rank: r}
	}
	return out
}

type localGroup struct {
	mu      sync.Mutex
	cond    *sync.Cond
	n       int
	timeout time.Duration
	// round counts the collectives completed; bufs holds the buffers of the ranks that
	// have joined the one under way, and op its name.
	round   int
	arrived int
	bufs    []any
	op      string
	// aborted is set once a rank aborts the group (Abort).
	aborted *AbortError
}

type local struct {
	g    *localGroup
	rank int
}

func (c *local) Rank() int    { return c.rank }
func (c *local) Size() int    { return c.g.n }
func (c *local) Close() error { return nil }

// Abort fails the other ranks' pending and later collectives with an *AbortError.
func (c *local) Abort(err error) {
	c.g.mu.Lock()
	defer c.g.mu.Unlock()
	if c.g.aborted == nil {
		c.g.aborted = &AbortError{Rank: c.rank, Err: err}
	}
	c.g.cond.Broadcast()
}

func (c *local) AllreduceFloat32(buf []float32) error {
	return c.g.join(c.rank, "allreduce", buf, func(bufs []any) { sumInto[float32](bufs) })
}

func (c *local) AllreduceFloat64(buf []float64) error {
	return c.g.join(c.rank, "allreduce", buf, func(bufs []any) { sumInto[float64](bufs) })
}

func (c *local) Broadcast(buf []byte) error {
	return c.g.join(c.rank, "broadcast", buf, func(bufs []any) {
		for _, b := range bufs[1:] {
			copy(b.([]byte), bufs[0].([]byte))
		}
	})
}

// sumInto puts the sum of the ranks' buffers, taken in rank order, into each.
func sumInto[T float32 | float64](bufs []any) {
	sum := append([]T(nil), bufs[0].([]T)...)
	for _, b := range bufs[1:] {
		for i, v := range b.([]T) {
			sum[i] += v
		}
	}
	for _, b := range bufs {
		copy(b.([]T), sum)
	}
}

func length(b any) int {
	switch b := b.(type) {
	case []float32:
		return len(b)
	case []float64:
		return len(b)
	case []byte:
		return len(b)
	}
	return -1
}

// join adds rank's buffer to the collective under way; the last rank to join runs
// combine over all buffers and releases the others.
func (g *localGroup) join(rank int, op string, buf any, combine func([]any)) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.aborted != nil {
		return g.aborted
	}
	if g.arrived > 0 && (g.op != op || length(g.bufs[firstArrived(g.bufs)]) != length(buf)) {
		return fmt.Errorf("rank %d: %s of %d values while another rank runs %s of %d", rank, op, length(buf), g.op, length(g.bufs[firstArrived(g.bufs)]))
	}
	round := g.round
	g.op, g.bufs[rank] = op, buf
	g.arrived++
	if g.arrived == g.n {
		combine(g.bufs)
		clear(g.bufs)
		g.arrived = 0
		g.round++
		g.cond.Broadcast()
		return nil
	}
	timer := time.AfterFunc(g.timeout, func() {
		g.mu.Lock()
		g.cond.Broadcast()
		g.mu.Unlock()
	})
	defer timer.Stop()
	deadline := time.Now().Add(g.timeout)
	for g.round == round {
		if g.aborted != nil {
			g.bufs[rank] = nil
			g.arrived--
			return g.aborted
		}
		if !time.Now().Before(deadline) {
			g.bufs[rank] = nil
			g.arrived--
			return &TimeoutError{Rank: rank, Op: op, After: g.timeout}
		}
		g.cond.Wait()
	}
	return nil
}

func firstArrived(bufs []any) int {
	for i, b := range bufs {
		if b != nil {
			return i
		}
	}
	return 0
}
