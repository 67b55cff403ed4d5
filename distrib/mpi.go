//go:build mpi

package distrib

/*
#cgo pkg-config: ompi
#include <mpi.h>

static int tk_init(int *provided) { return MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, provided); }
static int tk_rank(int *r) { return MPI_Comm_rank(MPI_COMM_WORLD, r); }
static int tk_size(int *s) { return MPI_Comm_size(MPI_COMM_WORLD, s); }
static int tk_allreduce_f32(void *buf, int n, MPI_Request *req) {
	return MPI_Iallreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, req);
}
static int tk_allreduce_f64(void *buf, int n, MPI_Request *req) {
	return MPI_Iallreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, req);
}
static int tk_bcast(void *buf, int n, MPI_Request *req) {
	return MPI_Ibcast(buf, n, MPI_BYTE, 0, MPI_COMM_WORLD, req);
}
static int tk_test(MPI_Request *req, int *done) { return MPI_Test(req, done, MPI_STATUS_IGNORE); }
static int tk_abort(int code) { return MPI_Abort(MPI_COMM_WORLD, code); }
static int tk_finalize(void) { return MPI_Finalize(); }
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"
	"unsafe"
)

// MPI says whether this build talks MPI (the build tag mpi).
const MPI = true

// Open returns the communicator of this process: MPI's world when it was started as
// one of several ranks (mpirun, srun), else Single.
func Open() (Comm, error) {
	if LaunchedRanks() == 0 {
		return Single{}, nil
	}
	timeout, err := TimeoutFromEnv()
	if err != nil {
		return nil, err
	}
	return InitMPI(timeout)
}

// mpiComm is MPI_COMM_WORLD, served by one goroutine locked to the OS thread that
// initialised MPI (MPI_THREAD_FUNNELED: only that thread may call MPI).
type mpiComm struct {
	rank, size int
	timeout    time.Duration
	calls      chan func()
	closeOnce  sync.Once
}

var initOnce struct {
	sync.Once
	c   *mpiComm
	err error
}

// InitMPI initialises MPI (once per process) on a goroutine locked to its OS thread,
// through which every later call goes; each collective gives up after timeout.
func InitMPI(timeout time.Duration) (Comm, error) {
	initOnce.Do(func() {
		c := &mpiComm{timeout: timeout, calls: make(chan func())}
		ready := make(chan error)
		go func() {
			runtime.LockOSThread() // never unlocked: MPI stays on this thread
			var provided, r, s C.int
			if rc := C.tk_init(&provided); rc != C.MPI_SUCCESS {
				ready <- fmt.Errorf("MPI_Init_thread failed (code %d)", int(rc))
				return
			}
			if provided < C.MPI_THREAD_FUNNELED {
				ready <- fmt.Errorf("MPI provides thread level %d, below MPI_THREAD_FUNNELED", int(provided))
				return
			}
			C.tk_rank(&r)
			C.tk_size(&s)
			c.rank, c.size = int(r), int(s)
			ready <- nil
			for f := range c.calls {
				f()
			}
		}()
		initOnce.c, initOnce.err = c, <-ready
	})
	if initOnce.err != nil {
		return nil, initOnce.err
	}
	return initOnce.c, nil
}

func (c *mpiComm) Rank() int { return c.rank }
func (c *mpiComm) Size() int { return c.size }

// on runs f on MPI's thread.
func (c *mpiComm) on(f func()) {
	done := make(chan struct{})
	c.calls <- func() { f(); close(done) }
	<-done
}

func (c *mpiComm) AllreduceFloat32(buf []float32) error {
	return c.collective("allreduce", unsafe.Pointer(unsafe.SliceData(buf)), len(buf), func(p unsafe.Pointer, req *C.MPI_Request) C.int {
		return C.tk_allreduce_f32(p, C.int(len(buf)), req)
	})
}

func (c *mpiComm) AllreduceFloat64(buf []float64) error {
	return c.collective("allreduce", unsafe.Pointer(unsafe.SliceData(buf)), len(buf), func(p unsafe.Pointer, req *C.MPI_Request) C.int {
		return C.tk_allreduce_f64(p, C.int(len(buf)), req)
	})
}

func (c *mpiComm) Broadcast(buf []byte) error {
	return c.collective("broadcast", unsafe.Pointer(unsafe.SliceData(buf)), len(buf), func(p unsafe.Pointer, req *C.MPI_Request) C.int {
		return C.tk_bcast(p, C.int(len(buf)), req)
	})
}

// collective starts a non-blocking collective over the n values at p (Go memory,
// pinned while MPI holds it) on MPI's thread and polls it to completion or to the
// timeout, after which the rank prints why and aborts the job: a collective that never
// completes cannot be cancelled, and the other ranks would wait on it.
func (c *mpiComm) collective(op string, p unsafe.Pointer, n int, start func(unsafe.Pointer, *C.MPI_Request) C.int) error {
	if n > 1<<31-1 {
		return fmt.Errorf("rank %d: %s of %d values: more than MPI's int count", c.rank, op, n)
	}
	var pin runtime.Pinner
	if n > 0 {
		pin.Pin(p)
	} else {
		var dummy [1]float64
		p = unsafe.Pointer(&dummy[0])
		pin.Pin(p)
	}
	defer pin.Unpin()
	var err error
	c.on(func() {
		var req C.MPI_Request
		if rc := start(p, &req); rc != C.MPI_SUCCESS {
			err = fmt.Errorf("rank %d: %s failed (MPI code %d)", c.rank, op, int(rc))
			return
		}
		began := time.Now()
		var done C.int
		for spins := 0; ; spins++ {
			if rc := C.tk_test(&req, &done); rc != C.MPI_SUCCESS {
				err = fmt.Errorf("rank %d: %s failed (MPI code %d)", c.rank, op, int(rc))
				return
			}
			if done != 0 {
				return
			}
			if time.Since(began) > c.timeout {
				err = &TimeoutError{Rank: c.rank, Op: op, After: c.timeout}
				return
			}
			if spins > 1000 {
				time.Sleep(50 * time.Microsecond)
			}
		}
	})
	var te *TimeoutError
	if errors.As(err, &te) {
		fmt.Fprintf(os.Stderr, "toolkit: %v; aborting the job\n", err)
		c.Abort(err)
	}
	return err
}

// Abort ends the job (MPI_Abort): mpirun kills every rank. It does not return.
func (c *mpiComm) Abort(error) {
	c.on(func() { C.tk_abort(1) })
}

// Close finalises MPI; the communicator is not usable afterwards.
func (c *mpiComm) Close() error {
	var rc C.int
	c.closeOnce.Do(func() {
		c.on(func() { rc = C.tk_finalize() })
		close(c.calls)
	})
	if rc != C.MPI_SUCCESS {
		return fmt.Errorf("rank %d: MPI_Finalize failed (code %d)", c.rank, int(rc))
	}
	return nil
}
