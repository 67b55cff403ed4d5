package distrib

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// run calls f on every rank of comms at once and returns the ranks' errors.
func run(comms []Comm, f func(c Comm) error) []error {
	errs := make([]error, len(comms))
	var wg sync.WaitGroup
	for i, c := range comms {
		wg.Go(func() { errs[i] = f(c) })
	}
	wg.Wait()
	return errs
}

// TestLocalCollectives checks the sums against arithmetic (rank r holds r+1 and
// 10*(r+1) at each place, so every rank must hold 1+2+3 = 6 and 60), the broadcast of
// rank 0's bytes, of any length, and Agree naming the rank that differs.
func TestLocalCollectives(t *testing.T) {
	comms := NewLocal(3, 10*time.Second)
	got32 := make([][]float32, 3)
	got64 := make([][]float64, 3)
	bytes := make([][]byte, 3)
	errs := run(comms, func(c Comm) error {
		r := c.Rank()
		b32 := []float32{float32(r + 1), float32(10 * (r + 1))}
		b64 := []float64{float64(r + 1), float64(10 * (r + 1))}
		if err := c.AllreduceFloat32(b32); err != nil {
			return err
		}
		if err := c.AllreduceFloat64(b64); err != nil {
			return err
		}
		data := []byte(strings.Repeat("x", r)) // rank 0's is empty
		if r == 0 {
			data = []byte("from rank 0")
		}
		out, err := BroadcastBytes(c, data)
		got32[r], got64[r], bytes[r] = b32, b64, out
		return err
	})
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
		if got32[r][0] != 6 || got32[r][1] != 60 || got64[r][0] != 6 || got64[r][1] != 60 {
			t.Errorf("rank %d: sums %v %v, want [6 60]", r, got32[r], got64[r])
		}
		if string(bytes[r]) != "from rank 0" {
			t.Errorf("rank %d: broadcast %q", r, bytes[r])
		}
	}
	errs = run(comms, func(c Comm) error {
		w := []float32{1, 2, 3}
		if c.Rank() == 2 {
			w[1] = 2.0000002 // one ulp away
		}
		return Agree(c, "weights", Fingerprint(w))
	})
	for r, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "weights of rank 2 differs") {
			t.Errorf("rank %d: Agree gave %v, want rank 2 named", r, err)
		}
	}
	errs = run(comms, func(c Comm) error { return Agree(c, "weights", Fingerprint([]float32{1, 2, 3})) })
	for r, err := range errs {
		if err != nil {
			t.Errorf("rank %d: equal fingerprints: %v", r, err)
		}
	}
}

// TestLocalTimeout checks that a collective that one rank never joins ends, on the
// ranks that wait, with a TimeoutError naming the waiting rank, and that the group
// still works afterwards.
func TestLocalTimeout(t *testing.T) {
	comms := NewLocal(2, 50*time.Millisecond)
	err := comms[0].AllreduceFloat32([]float32{1})
	var te *TimeoutError
	if !errors.As(err, &te) || te.Rank != 0 || !strings.Contains(err.Error(), "rank 0: allreduce waited") {
		t.Fatalf("error %v, want a timeout of rank 0", err)
	}
	errs := run(comms, func(c Comm) error { return c.AllreduceFloat32(make([]float32, 4)) })
	for r, err := range errs {
		if err != nil {
			t.Errorf("rank %d after a timeout: %v", r, err)
		}
	}
	// Ranks that disagree on the collective's length are told so.
	errs = run(comms, func(c Comm) error { return c.AllreduceFloat32(make([]float32, 1+c.Rank())) })
	if errs[0] == nil && errs[1] == nil {
		t.Error("allreduces of 1 and 2 values accepted")
	}
}

// TestLocalAbort: while ranks 0 and 2 wait in an allreduce, rank 1 fails and aborts the
// group: both collectives end with an *AbortError naming rank 1 and its error (not a
// *TimeoutError, the collectives' timeout being a minute), and so does a later one.
func TestLocalAbort(t *testing.T) {
	comms := NewLocal(3, time.Minute)
	failure := errors.New("an image that does not decode")
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for _, r := range []int{0, 2} {
		wg.Go(func() { errs[r] = comms[r].AllreduceFloat32(make([]float32, 4)) })
	}
	comms[1].Abort(failure)
	wg.Wait()
	for _, r := range []int{0, 2} {
		var ae *AbortError
		if !errors.As(errs[r], &ae) || ae.Rank != 1 || !errors.Is(errs[r], failure) {
			t.Errorf("rank %d: %v, want an *AbortError of rank 1", r, errs[r])
		}
	}
	if err := comms[0].Broadcast(make([]byte, 3)); !errors.Is(err, failure) || !strings.Contains(err.Error(), "rank 1 failed") {
		t.Errorf("a collective after the abort: %v", err)
	}
}
