// Package distrib is what data-parallel training needs of the processes (ranks) that
// train together: a Comm sums float buffers across the ranks in place (allreduce),
// sends rank 0's bytes to every rank (broadcast) and bounds each such collective by a
// timeout, after which the rank gives up with an error that names it (MPI then ends
// the job). Abort ends every rank at once when one fails on its own, rather than leave
// the others waiting for it until their timeout. Agree checks that every rank holds the
// same fingerprint of a state.
//
// Three implementations: Single, the one process of a run without MPI; NewLocal, ranks
// as goroutines of one process that sum in rank order (the reduction logic of training
// tested without MPI); and, with the build tag mpi, Open MPI through cgo (InitMPI, which
// Open runs under mpirun), every MPI call on one locked OS thread (MPI_THREAD_FUNNELED),
// each collective non-blocking (MPI_Iallreduce, MPI_Ibcast) and polled to its deadline.
// Without the tag the build stays pure Go, and Open refuses to run as one of several
// ranks, saying how to build with MPI.
package distrib
