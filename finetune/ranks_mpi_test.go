//go:build mpi

package finetune

import (
	"context"
	"errors"
	"testing"

	"toolkit/distrib"
)

// TestMPIMatchesOneProcess is TestRanksMatchOneProcess over MPI: run the test binary
// (go test -tags mpi -c) under mpirun -np 2 (CI does). Every rank trains the demo's
// every-group stage for three steps of the global batch of 32 on its share; the ranks'
// weights must agree bit for bit (distrib.Agree over their fingerprints) and rank 0's
// must be within 1e-5 relative of one process's, which rank 0 also trains. Outside
// mpirun it is skipped.
func TestMPIMatchesOneProcess(t *testing.T) {
	if distrib.LaunchedRanks() == 0 {
		t.Skip("not started by mpirun: run the test binary under mpirun -np 2")
	}
	comm, err := distrib.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer comm.Close()
	cfg := demoRanksConfig(t)
	tr, err := New(cfg, WithoutDefaultHooks(), WithHooks(stopAfter(3)), WithComm(comm))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background()); !errors.Is(err, errStopped) {
		t.Fatalf("rank %d: %v", comm.Rank(), err)
	}
	var all [][]float32
	for _, name := range tr.model.ParamNames() {
		all = append(all, tr.model.Param(name))
	}
	if err := distrib.Agree(comm, "weights after 3 steps", distrib.Fingerprint(all...)); err != nil {
		t.Fatal(err)
	}
	if comm.Rank() == 0 {
		one, err := New(cfg, WithoutDefaultHooks(), WithHooks(stopAfter(3)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := one.Run(context.Background()); !errors.Is(err, errStopped) {
			t.Fatal(err)
		}
		worst := checkRanks(t, []*Trainer{tr}, weightsOf(one))
		t.Logf("np=%d: after 3 steps the ranks agree bit for bit; the largest relative difference from one process is %.2g", comm.Size(), worst)
	}
}
