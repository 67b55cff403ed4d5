//go:build mpi

package distrib

import (
	"testing"
)

// TestMPICollectives runs under mpirun (the build tag mpi, -np 2 or more; CI runs it
// so): the sums against arithmetic, 1+2+...+n at every place, bit-identical on every
// rank by Agree, and the broadcast of rank 0's bytes. Outside mpirun it is skipped.
func TestMPICollectives(t *testing.T) {
	if LaunchedRanks() == 0 {
		t.Skip("not started by mpirun: run the test binary under mpirun -np 2")
	}
	c, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	n, r := c.Size(), c.Rank()
	if n < 2 {
		t.Fatalf("size %d: run with -np 2 or more", n)
	}
	buf := make([]float32, 1<<20)
	for i := range buf {
		buf[i] = float32(r+1) * float32(i%7)
	}
	if err := c.AllreduceFloat32(buf); err != nil {
		t.Fatal(err)
	}
	want := float32(n * (n + 1) / 2)
	for i, v := range buf {
		if v != want*float32(i%7) {
			t.Fatalf("rank %d: value %d is %v, want %v", r, i, v, want*float32(i%7))
		}
	}
	if err := Agree(c, "sum", Fingerprint(buf)); err != nil {
		t.Fatal(err)
	}
	b64 := []float64{float64(r), 1}
	if err := c.AllreduceFloat64(b64); err != nil {
		t.Fatal(err)
	}
	if b64[0] != float64(n*(n-1)/2) || b64[1] != float64(n) {
		t.Errorf("rank %d: float64 sums %v", r, b64)
	}
	msg := []byte("rank 0 says")
	if r != 0 {
		msg = nil
	}
	got, err := BroadcastBytes(c, msg)
	if err != nil || string(got) != "rank 0 says" {
		t.Errorf("rank %d: broadcast %q, %v", r, got, err)
	}
	if err := c.AllreduceFloat32(nil); err != nil { // an empty collective still meets
		t.Error(err)
	}
	if err := c.Close(); err != nil {
		t.Error(err)
	}
}
