// Package shard splits a job over a collection of images (evaluating a model on it,
// predicting, extracting features) among independent processes, as a Kubernetes
// Indexed Job or a Slurm job array runs them, and joins their results into exactly what
// one process gives.
//
// A Spec is shard I of N. It takes whole batches: of a job of B batches it runs
// batches I*B/N to (I+1)*B/N (Spec.Range), so that each of its batches is one that a
// single process runs, with the same examples at the same batch size and therefore the
// same numbers, bit for bit. Parse reads "I/N" (a --shard flag); FromEnv reads the index
// and count that Kubernetes (JOB_COMPLETION_INDEX, with JOB_COMPLETIONS set in the
// Job's env) or Slurm (SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT) give a task.
//
// A shard writes its results to a part file (Write), atomically: a part is whole or
// absent, and running a shard again writes the same bytes. A part holds a JSON header
// and binary arrays, with a CRC-32C over everything:
//
//   - the job: what the command line asked (the model, the data, the options), which
//     every part and the merge must agree on;
//   - the shared facts: what each shard found of the whole input (the classes, the
//     files left out), which every part must agree on;
//   - its own results: the examples [Lo, Hi) of Total it holds, and for them whatever
//     the command keeps by example (file names, labels) and its arrays (logits,
//     features).
//
// Gather reads the parts of a job from a folder and checks that they fit together:
// every shard of one count present once, of the same job and input, their ranges
// following each other from 0 to Total. Each check's error names the part file and its
// shard.
package shard
