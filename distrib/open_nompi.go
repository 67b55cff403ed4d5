//go:build !mpi

package distrib

import "fmt"

// MPI says whether this build talks MPI (the build tag mpi).
const MPI = false

// Open returns the communicator of this process: Single, since this build has no MPI;
// started as one of several ranks (under mpirun or srun) it refuses, saying how to
// build with MPI, rather than train the same run several times over.
func Open() (Comm, error) {
	if n := LaunchedRanks(); n > 1 {
		return nil, fmt.Errorf("started as one of %d ranks (mpirun or srun), but this toolkit was built without MPI: build it with go build -tags mpi ./cmd/toolkit (cgo and Open MPI's libopenmpi-dev), or run it as one process", n)
	}
	return Single{}, nil
}
