package shard

import (
	"fmt"
	"strconv"
	"strings"
)

// Spec is shard Index of Count. The zero value is no shard: the whole job in one
// process, which writes no part.
type Spec struct {
	Index int `json:"index"`
	Count int `json:"count"`
}

// Sharded reports whether s is a shard (of one or more) rather than the whole job.
func (s Spec) Sharded() bool { return s.Count > 0 }

// String is "I/N", as Parse reads it.
func (s Spec) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }

// Validate checks that the index is one of the count's.
func (s Spec) Validate() error {
	if s.Count < 1 || s.Index < 0 || s.Index >= s.Count {
		return fmt.Errorf("shard %d of %d: want a count of 1 or more and an index from 0 to the count less one", s.Index, s.Count)
	}
	return nil
}

// Parse reads a shard as "I/N": shard I (from 0) of N.
func Parse(v string) (Spec, error) {
	i, n, ok := strings.Cut(v, "/")
	index, err1 := strconv.Atoi(strings.TrimSpace(i))
	count, err2 := strconv.Atoi(strings.TrimSpace(n))
	if !ok || err1 != nil || err2 != nil {
		return Spec{}, fmt.Errorf("shard %q: want I/N, shard I (from 0) of N, such as 3/8", v)
	}
	s := Spec{Index: index, Count: count}
	if err := s.Validate(); err != nil {
		return Spec{}, fmt.Errorf("shard %q: %w", v, err)
	}
	return s, nil
}

// FromEnv reads the shard a task of a Kubernetes Indexed Job or a Slurm job array is,
// through getenv (os.Getenv): JOB_COMPLETION_INDEX of JOB_COMPLETIONS (Kubernetes sets
// the index; the Job's env must set the count, spec.completions), or
// SLURM_ARRAY_TASK_ID less SLURM_ARRAY_TASK_MIN of SLURM_ARRAY_TASK_COUNT (sbatch
// --array). It returns the zero Spec and "" when neither is set, else the shard and the
// variables it came from.
func FromEnv(getenv func(string) string) (Spec, string, error) {
	num := func(name string) (int, bool, error) {
		v := getenv(name)
		if v == "" {
			return 0, false, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, true, fmt.Errorf("%s=%s: not a whole number", name, v)
		}
		return n, true, nil
	}
	if index, ok, err := num("JOB_COMPLETION_INDEX"); ok || err != nil {
		const from = "JOB_COMPLETION_INDEX of JOB_COMPLETIONS"
		if err != nil {
			return Spec{}, from, err
		}
		count, ok, err := num("JOB_COMPLETIONS")
		if err != nil {
			return Spec{}, from, err
		}
		if !ok {
			return Spec{}, from, fmt.Errorf("JOB_COMPLETION_INDEX=%d but JOB_COMPLETIONS is not set: set it in the Job's env to spec.completions, the number of shards", index)
		}
		s := Spec{Index: index, Count: count}
		if err := s.Validate(); err != nil {
			return Spec{}, from, fmt.Errorf("JOB_COMPLETION_INDEX=%d, JOB_COMPLETIONS=%d: %w", index, count, err)
		}
		return s, from, nil
	}
	if id, ok, err := num("SLURM_ARRAY_TASK_ID"); ok || err != nil {
		const from = "SLURM_ARRAY_TASK_ID of SLURM_ARRAY_TASK_COUNT"
		if err != nil {
			return Spec{}, from, err
		}
		count, ok, err := num("SLURM_ARRAY_TASK_COUNT")
		if err != nil {
			return Spec{}, from, err
		}
		if !ok {
			return Spec{}, from, fmt.Errorf("SLURM_ARRAY_TASK_ID=%d but SLURM_ARRAY_TASK_COUNT is not set", id)
		}
		low, _, err := num("SLURM_ARRAY_TASK_MIN")
		if err != nil {
			return Spec{}, from, err
		}
		if step, ok, err := num("SLURM_ARRAY_TASK_STEP"); err != nil || ok && step != 1 {
			if err == nil {
				err = fmt.Errorf("SLURM_ARRAY_TASK_STEP=%d: the array's task ids must follow each other (--array=0-%d)", step, count-1)
			}
			return Spec{}, from, err
		}
		s := Spec{Index: id - low, Count: count}
		if err := s.Validate(); err != nil {
			return Spec{}, from, fmt.Errorf("SLURM_ARRAY_TASK_ID=%d (SLURM_ARRAY_TASK_MIN=%d), SLURM_ARRAY_TASK_COUNT=%d: the array's task ids must be consecutive (--array=0-%d): %w",
				id, low, count, count-1, err)
		}
		return s, from, nil
	}
	return Spec{}, "", nil
}

// Batches returns the batches [lo, hi) of a job of n batches that the shard runs: about
// n/Count each, the later shards taking one more where n does not divide. The zero Spec
// runs them all.
func (s Spec) Batches(n int) (lo, hi int) {
	if !s.Sharded() {
		return 0, n
	}
	return s.Index * n / s.Count, (s.Index + 1) * n / s.Count
}

// Range returns the examples [lo, hi) of a job of n examples in batches of batch that
// the shard runs: those of its whole batches (Batches), the last batch short where n
// does not divide. A shard of more shards than batches may hold none (lo == hi).
func (s Spec) Range(n, batch int) (lo, hi int) {
	if batch < 1 {
		batch = 1
	}
	blo, bhi := s.Batches((n + batch - 1) / batch)
	return min(blo*batch, n), min(bhi*batch, n)
}
