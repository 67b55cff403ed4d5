package kernels

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// The goroutines that run parallelFor's chunks beside its caller.
//
// A kernel at batch 1 lasts 20-100 µs (MobileNet-V2's convolutions), and starting a
// goroutine on an idle processor costs 10-15 µs before it runs (the runtime wakes a
// thread parked in the kernel): a goroutine per chunk left the second core idle for a
// fifth of such a kernel. The package keeps instead one worker per further processor;
// a worker that finds no chunk to take spins for a while (spinFor) before it parks, so
// that the next kernel of a forward pass finds it running, as ONNX Runtime's and
// OpenMP's thread pools do. The caller takes chunks too; a chunk no worker took runs on
// the caller, so a kernel never waits for a worker to start.
//
// The chunks are fixed by n and w alone (chunk i is [i*n/w, (i+1)*n/w) with worker
// index i), whoever runs them: results do not depend on which goroutine ran what.

// spinFor is how long an idle worker looks for chunks before it parks. A forward
// pass's kernels follow each other within microseconds; a longer gap (a batch being
// read) parks the workers and costs one wake-up.
const spinFor = 100 * time.Microsecond

// parallelJob is one parallelFor call, or a task (Go): its chunks are claimed in order.
type parallelJob struct {
	fn   func(worker, lo, hi int)
	n, w int
	task bool         // a task: long, taken by idle workers only (see wait)
	next atomic.Int64 // the next chunk to claim
	left atomic.Int64 // chunks not finished
	// panicked holds the value of the first chunk that panicked: the job's owner panics
	// with it once every chunk is done, wherever the chunk ran.
	panicked atomic.Pointer[chunkPanic]
}

// chunkPanic is a recovered panic value.
type chunkPanic struct{ value any }

// runChunks claims and runs the job's chunks until none is left to claim.
func (j *parallelJob) runChunks() {
	for {
		i := int(j.next.Add(1) - 1)
		if i >= j.w {
			return
		}
		j.runChunk(i)
	}
}

// runChunk runs chunk i and counts it done, also when it panics (the panic is kept
// for the job's owner: it must not unwind whichever goroutine ran the chunk, nor leave
// the owner waiting for the chunk).
func (j *parallelJob) runChunk(i int) {
	defer func() {
		if r := recover(); r != nil {
			j.panicked.CompareAndSwap(nil, &chunkPanic{r})
		}
		j.left.Add(-1)
	}()
	j.fn(i, i*j.n/j.w, (i+1)*j.n/j.w)
}

// finish waits for every chunk of the job, then panics with the first chunk's panic,
// if any, on the owner's goroutine.
func (j *parallelJob) finish() {
	j.wait()
	if p := j.panicked.Load(); p != nil {
		panic(p.value)
	}
}

// claimable reports whether some chunk of the job is not yet claimed.
func (j *parallelJob) claimable() bool { return int(j.next.Load()) < j.w }

// workerPool holds the workers and the jobs with chunks to claim.
type workerPool struct {
	mu      sync.Mutex
	wake    *sync.Cond
	jobs    []*parallelJob // jobs with chunks not yet claimed (or not yet seen to be all claimed)
	open    atomic.Int64   // len(jobs), read by spinning workers
	kernels atomic.Int64   // the jobs that are no task, read by waiting callers
	started int            // workers started
	parked  int            // workers waiting on wake
	// spun is the nanoseconds goroutines have spent polling for work (SpinSeconds).
	spun atomic.Int64
}

// SpinSeconds returns the seconds the kernels' goroutines have spent polling for work
// since the process started: the workers between jobs, and callers waiting for a chunk
// another goroutine runs. The operating system counts that time as busy CPU time
// though nothing was computed; subtract it to tell how busy the cores really were.
func SpinSeconds() float64 { return float64(pool.spun.Load()) / 1e9 }

// pool is the package's worker pool (with the scratch free lists, its only global
// state); workers start on first need, one per processor beyond the caller's.
var pool = func() *workerPool {
	p := &workerPool{}
	p.wake = sync.NewCond(&p.mu)
	return p
}()

// post offers job's chunks to the workers, starting or waking up to helpers of them.
func (p *workerPool) post(j *parallelJob, helpers int) {
	helpers = min(helpers, runtime.GOMAXPROCS(0)-1)
	p.mu.Lock()
	p.jobs = append(p.jobs, j)
	p.recount()
	for p.started < helpers {
		p.started++
		go p.work()
	}
	for range min(p.parked, helpers) {
		p.wake.Signal()
	}
	p.mu.Unlock()
}

// withdraw removes job from the list (its chunks are all claimed).
func (p *workerPool) withdraw(j *parallelJob) {
	p.mu.Lock()
	p.removeLocked(j)
	p.mu.Unlock()
}

func (p *workerPool) removeLocked(j *parallelJob) {
	for i, x := range p.jobs {
		if x == j {
			p.jobs = slices.Delete(p.jobs, i, i+1)
			break
		}
	}
	p.recount()
}

// recount sets open and kernels from the list of jobs (p.mu held).
func (p *workerPool) recount() {
	k := 0
	for _, j := range p.jobs {
		if !j.task {
			k++
		}
	}
	p.open.Store(int64(len(p.jobs)))
	p.kernels.Store(int64(k))
}

// take returns a job with chunks to claim (not a task where noTasks is set), or nil,
// dropping those all claimed.
func (p *workerPool) take(noTasks bool) *parallelJob {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := 0; i < len(p.jobs); {
		j := p.jobs[i]
		switch {
		case !j.claimable():
			p.jobs = slices.Delete(p.jobs, i, i+1)
			p.recount()
		case noTasks && j.task:
			i++
		default:
			return j
		}
	}
	return nil
}

// work is a worker's loop: run chunks, spin a while for more, park.
func (p *workerPool) work() {
	for {
		if j := p.take(false); j != nil {
			j.runChunks()
			continue
		}
		if p.spin() {
			continue
		}
		p.mu.Lock()
		if len(p.jobs) == 0 {
			p.parked++
			p.wake.Wait()
			p.parked--
		}
		p.mu.Unlock()
	}
}

// spin waits up to spinFor for a job to be posted and reports whether one was. It
// yields the processor now and then, so that other goroutines (a data loader, an
// asynchronous gradient) run on it.
func (p *workerPool) spin() bool {
	start := time.Now()
	defer func() { p.spun.Add(int64(time.Since(start))) }()
	for n := 1; ; n++ {
		if p.open.Load() > 0 {
			return true
		}
		if n%256 == 0 {
			if time.Since(start) > spinFor {
				return false
			}
			runtime.Gosched()
		}
	}
}

// parallelFor splits [0, n) into w contiguous chunks and runs fn on each, chunk i as
// fn(i, i*n/w, (i+1)*n/w), on the caller and the package's workers, and returns when
// all have run. w <= 1 runs fn(0, 0, n) directly. A chunk must not wait for another
// (it may run on the caller after it). A chunk's panic, wherever the chunk ran, comes
// out of parallelFor once every chunk is done.
func parallelFor(n, w int, fn func(worker, lo, hi int)) {
	if w <= 1 || n <= 1 {
		fn(0, 0, n)
		return
	}
	j := &parallelJob{fn: fn, n: n, w: min(w, n)}
	j.left.Store(int64(j.w))
	posted := runtime.GOMAXPROCS(0) > 1
	if posted {
		pool.post(j, j.w-1)
	}
	j.runChunks()
	if posted {
		pool.withdraw(j)
	}
	j.finish()
}

// wait returns when every chunk of the job has run. The caller meanwhile runs chunks
// of other kernels' jobs (those a chunk of this job posted, or an asynchronous
// gradient's kernels), as an idle worker would; not a task, which may last far longer
// than the chunk it waits for.
func (j *parallelJob) wait() {
	if j.left.Load() == 0 {
		return
	}
	start, helped := time.Now(), time.Duration(0)
	for n := 1; j.left.Load() > 0; n++ {
		if pool.kernels.Load() > 0 { // not the mutex while only a task is open
			if other := pool.take(true); other != nil {
				t := time.Now()
				other.runChunks()
				helped += time.Since(t)
				continue
			}
		}
		if n%256 == 0 {
			runtime.Gosched()
		}
	}
	pool.spun.Add(int64(time.Since(start) - helped))
}

// Task is a function started with Go.
type Task struct{ job parallelJob }

// Go starts fn beside the caller on one of the package's workers, which also run the
// kernels' chunks: a gradient that can run beside the rest of a backward pass takes
// the core the other kernels leave idle, and a worker stays busy with it instead of a
// goroutine of its own waiting for a processor. Wait runs fn on the caller if no
// worker has started it.
func Go(fn func()) *Task {
	t := &Task{job: parallelJob{fn: func(int, int, int) { fn() }, n: 1, w: 1, task: true}}
	t.job.left.Store(1)
	if runtime.GOMAXPROCS(0) == 1 {
		return t // Wait runs it
	}
	pool.post(&t.job, 1)
	return t
}

// Wait returns when the task's function has returned; if it panicked, Wait panics
// with its value.
func (t *Task) Wait() {
	t.job.runChunks()
	pool.withdraw(&t.job)
	t.job.finish()
}
