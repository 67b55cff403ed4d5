package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"toolkit/distrib"
	"toolkit/finetune"
)

// ranks is this process's part in a run over several processes: under mpirun each
// process is a rank of one run (distrib.Open), else the only one. Rank 0 prints and
// writes; the other ranks work in silence.
type ranks struct {
	comm   distrib.Comm
	stderr io.Writer
}

func openRanks(stderr io.Writer) (*ranks, error) {
	comm, err := distrib.Open()
	if err != nil {
		return nil, err
	}
	return &ranks{comm: comm, stderr: stderr}, nil
}

// out is w on rank 0, and nothing on the other ranks.
func (r *ranks) out(w io.Writer) io.Writer {
	if r.comm.Rank() == 0 {
		return w
	}
	return io.Discard
}

// end ends the rank's part after the command, whose error err was. On a rank other
// than 0 the error names the rank. A rank that fails on its own (an image that no
// longer decodes on its share, a full disk on rank 0) would leave the others waiting
// for it in their next collective until their timeout: it prints its error and ends
// the whole job at once (Comm.Abort). An interruption, which the ranks agree on, ends
// them together; the communicator is closed.
func (r *ranks) end(err error) error {
	if err != nil && r.comm.Rank() != 0 && !errors.Is(err, errReported) {
		err = fmt.Errorf("rank %d: %w", r.comm.Rank(), err)
	}
	interrupted := errors.Is(err, finetune.ErrInterrupted) || errors.Is(err, context.Canceled)
	if err != nil && r.comm.Size() > 1 && !interrupted {
		if !errors.Is(err, errReported) {
			fmt.Fprintln(r.stderr, "toolkit:", err)
		}
		r.comm.Abort(err) // under MPI the job ends here
		return errors.Join(err, errReported)
	}
	return errors.Join(err, r.comm.Close())
}
