#!/bin/bash
# Sharded feature extraction on a Slurm cluster: a job array of 8 tasks, each shard
# SLURM_ARRAY_TASK_ID of SLURM_ARRAY_TASK_COUNT, computing its whole batches and
# writing its part to OUT_DIR/parts on a file system every node sees; then, once every
# task has ended well, the merge writes OUT_DIR/features.npy and files.txt, byte for
# byte what one process writes. MODEL is a model file, or a recipe (.yaml; the merge
# then takes -c RECIPE):
#   jid=$(sbatch --parsable deploy/slurm-extract.sh MODEL IMAGES OUT_DIR)
#   sbatch --dependency=afterok:$jid --wrap "toolkit extract MODEL --data IMAGES -o OUT_DIR --merge"
# A task that failed runs again alone, as the shard it was (a one-task array would
# otherwise be a job of one shard): its part is rewritten, the same bytes.
#   sbatch --array=0 --export=ALL,TOOLKIT_SHARD=3/8 deploy/slurm-extract.sh MODEL IMAGES OUT_DIR
#SBATCH --job-name=toolkit-extract
#SBATCH --array=0-7
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=8
#SBATCH --mem=8G
#SBATCH --time=4:00:00
#SBATCH --output=extract-%A_%a.out
set -euo pipefail
usage="usage: sbatch slurm-extract.sh MODEL.onnx|RECIPE.yaml IMAGES OUT_DIR"
model=${1:?$usage}
images=${2:?$usage}
out=${3:?$usage}
export GOMAXPROCS=$SLURM_CPUS_PER_TASK
case $model in
  *.yaml | *.yml) from=(-c "$model") ;;
  *) from=("$model") ;;
esac
# The shard comes from SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT (or TOOLKIT_SHARD).
exec toolkit extract "${from[@]}" --data "$images" -o "$out" --batch-size 32
