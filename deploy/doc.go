// Package deploy holds no code: its folder holds what runs the toolkit beyond one
// machine (a Dockerfile that builds it with MPI; a Kubeflow MPIJob and a Slurm batch
// script for data-parallel fine-tuning; Kubernetes Indexed Jobs and Slurm job arrays
// for sharded feature extraction and evaluation, with the Jobs that merge their parts),
// and its test checks their structure: that each parses and holds the fields its runner
// requires, that they agree with each other (an Indexed Job's JOB_COMPLETIONS and its
// completions, a merge's command and its shards'), and that the array scripts run the
// toolkit commands they mean. cmd/toolkit's TestDeployCommands parses every manifest's
// toolkit command with the CLI's own flags.
package deploy
