package distrib

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

// Comm is one rank of a group of processes that train together. Every rank calls the
// same collectives in the same order with buffers of the same lengths.
type Comm interface {
	// Rank is this process's number, from 0; Size the number of ranks.
	Rank() int
	Size() int
	// AllreduceFloat32 replaces buf on every rank by the element-wise sum of all
	// ranks' buf.
	AllreduceFloat32(buf []float32) error
	// AllreduceFloat64 is AllreduceFloat32 for float64 values (counts and sums that
	// must be exact).
	AllreduceFloat64(buf []float64) error
	// Broadcast replaces buf on every rank by rank 0's.
	Broadcast(buf []byte) error
	// Close ends this rank's part in the group.
	Close() error
	// Abort ends the whole group because this rank failed with err, so that the other
	// ranks, which may be waiting for it in a collective, end now rather than at their
	// timeout: under MPI the job ends (MPI_Abort, which does not return); the ranks of
	// NewLocal fail their pending and later collectives with an *AbortError naming this
	// rank and err; Single does nothing.
	Abort(err error)
}

// AbortError is a collective that ended because another rank failed (Comm.Abort).
type AbortError struct {
	Rank int   // the rank that failed
	Err  error // its error
}

func (e *AbortError) Error() string {
	return fmt.Sprintf("rank %d failed, which ends every rank: %v", e.Rank, e.Err)
}

func (e *AbortError) Unwrap() error { return e.Err }

// DefaultTimeout bounds each collective unless TOOLKIT_MPI_TIMEOUT (seconds) says
// otherwise: long enough for a rank to build its feature cache or validate while the
// others wait, short enough that a hung job ends.
const DefaultTimeout = 5 * time.Minute

// TimeoutFromEnv is DefaultTimeout, or TOOLKIT_MPI_TIMEOUT's seconds.
func TimeoutFromEnv() (time.Duration, error) {
	v := os.Getenv("TOOLKIT_MPI_TIMEOUT")
	if v == "" {
		return DefaultTimeout, nil
	}
	s, err := strconv.ParseFloat(v, 64)
	if err != nil || !(s > 0) || math.IsInf(s, 0) {
		return 0, fmt.Errorf("TOOLKIT_MPI_TIMEOUT=%s: want a number of seconds above 0", v)
	}
	return time.Duration(s * float64(time.Second)), nil
}

// TimeoutError is a collective that did not complete in time: another rank has died,
// hangs, or is slower than the timeout allows.
type TimeoutError struct {
	Rank  int
	Op    string
	After time.Duration
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("rank %d: %s waited %v for the other ranks: one has died or hangs (TOOLKIT_MPI_TIMEOUT sets the limit)", e.Rank, e.Op, e.After)
}

// LaunchedRanks returns the number of ranks the environment says this process is one
// of (Open MPI's mpirun, MPICH's and Slurm's PMI, PMIx), or 0 when it names none.
func LaunchedRanks() int {
	for _, k := range []string{"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"} {
		if n, err := strconv.Atoi(os.Getenv(k)); err == nil && n > 0 {
			return n
		}
	}
	return 0
}

// Single is the communicator of one process: every collective leaves its buffer as it is.
type Single struct{}

func (Single) Rank() int                        { return 0 }
func (Single) Size() int                        { return 1 }
func (Single) AllreduceFloat32([]float32) error { return nil }
func (Single) AllreduceFloat64([]float64) error { return nil }
func (Single) Broadcast([]byte) error           { return nil }
func (Single) Close() error                     { return nil }
func (Single) Abort(error)                      {}

// BroadcastBytes returns rank 0's data on every rank, whatever the length of the
// other ranks' data.
func BroadcastBytes(c Comm, data []byte) ([]byte, error) {
	if c.Size() == 1 {
		return data, nil
	}
	n := make([]byte, 8)
	binary.LittleEndian.PutUint64(n, uint64(len(data)))
	if err := c.Broadcast(n); err != nil {
		return nil, err
	}
	size := binary.LittleEndian.Uint64(n)
	if c.Rank() != 0 {
		data = make([]byte, size)
	}
	if err := c.Broadcast(data); err != nil {
		return nil, err
	}
	return data, nil
}

// Agree checks that every rank has the same fingerprint of what (Fingerprint): an
// error on every rank names the ranks whose fingerprint differs from rank 0's.
func Agree(c Comm, what string, fingerprint uint64) error {
	if c.Size() == 1 {
		return nil
	}
	// Each rank fills its two slots with its fingerprint's halves, exact in float64.
	all := make([]float64, 2*c.Size())
	all[2*c.Rank()], all[2*c.Rank()+1] = float64(fingerprint>>32), float64(fingerprint&0xffffffff)
	if err := c.AllreduceFloat64(all); err != nil {
		return err
	}
	var differ []string
	for r := 1; r < c.Size(); r++ {
		if all[2*r] != all[0] || all[2*r+1] != all[1] {
			differ = append(differ, strconv.Itoa(r))
		}
	}
	if len(differ) > 0 {
		return fmt.Errorf("the %s of rank %s differs from rank 0's: the ranks would train apart", what, strings.Join(differ, ", "))
	}
	return nil
}

// Fingerprint is FNV-1a over float32 slices' bits, in order: equal for equal values,
// bit for bit.
func Fingerprint(slices ...[]float32) uint64 {
	h := fnv.New64a()
	for _, s := range slices {
		if len(s) > 0 {
			h.Write(unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), 4*len(s)))
		}
	}
	return h.Sum64()
}
