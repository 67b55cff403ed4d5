#!/bin/bash
# Data-parallel fine-tuning on a Slurm cluster: one rank per node, mpirun inside the
# allocation (Open MPI reads it from Slurm). The recipe, the images and the run folder
# on a file system every node sees. A requeued job (scontrol requeue, a preemption)
# resumes from the run's checkpoint: SIGTERM makes rank 0 save it before the job ends.
#   sbatch deploy/slurm-finetune.sh recipe.yaml runs/mine
#SBATCH --job-name=toolkit-finetune
#SBATCH --nodes=4
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=32
#SBATCH --time=24:00:00
#SBATCH --signal=B:TERM@120
#SBATCH --requeue
#SBATCH --output=finetune-%j.out
set -euo pipefail
recipe=${1:?usage: sbatch slurm-finetune.sh RECIPE RUN_DIR}
run=${2:?usage: sbatch slurm-finetune.sh RECIPE RUN_DIR}
export GOMAXPROCS=$SLURM_CPUS_PER_TASK
envs=(-x GOMAXPROCS)
if [ -d "$run/checkpoint" ]; then
  args=(--resume "$run")
else
  args=(-c "$recipe")
  export TOOLKIT_OUTPUT_DIR=$run
  envs+=(-x TOOLKIT_OUTPUT_DIR)
fi
# mpirun passes SIGTERM on to every rank; they agree to stop and rank 0 saves.
mpirun --bind-to none -np "$SLURM_NTASKS" "${envs[@]}" toolkit finetune "${args[@]}" &
pid=$!
trap 'kill -TERM "$pid"' TERM
wait "$pid" || { status=$?; wait "$pid" 2>/dev/null; exit "$status"; }
