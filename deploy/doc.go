// Package deploy holds no code: its folder holds what runs the toolkit beyond one
// machine (a Dockerfile that builds it with MPI, a Kubeflow MPIJob and a Slurm batch
// script for data-parallel fine-tuning), and its test checks their structure: that each
// parses and holds the fields its runner requires, and that they agree with each other
// and with the toolkit's command line.
package deploy
