package main

import (
	"errors"
	"fmt"
	"io"

	"toolkit/distrib"
)

// ranks is this process's part in a run over several processes: under mpirun each
// process is a rank of one run (distrib.Open), else the only one. Rank 0 prints and
// writes; the other ranks work in silence.
type ranks struct {
	comm distrib.Comm
}

func openRanks() (*ranks, error) {
	comm, err := distrib.Open()
	if err != nil {
		return nil, err
	}
	return &ranks{comm: comm}, nil
}

// out is w on rank 0, and nothing on the other ranks.
func (r *ranks) out(w io.Writer) io.Writer {
	if r.comm.Rank() == 0 {
		return w
	}
	return io.Discard
}

// end ends the rank's part after the command, whose error err was: on a rank other
// than 0 the error names the rank; the communicator is closed.
func (r *ranks) end(err error) error {
	if err != nil && r.comm.Rank() != 0 && !errors.Is(err, errReported) {
		err = fmt.Errorf("rank %d: %w", r.comm.Rank(), err)
	}
	return errors.Join(err, r.comm.Close())
}
