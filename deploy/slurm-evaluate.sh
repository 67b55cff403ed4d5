#!/bin/bash
# Sharded evaluation on a Slurm cluster: a job array of 4 tasks, each shard
# SLURM_ARRAY_TASK_ID of SLURM_ARRAY_TASK_COUNT, evaluating its whole batches (with
# test-time augmentation, the most confused classes and the top losses' candidates)
# and writing its part to OUT_DIR/parts on a file system every node sees; then, once
# every task has ended well, the merge prints one process's report and writes its
# confusion.png, top_losses.png and top_losses.csv to OUT_DIR:
#   jid=$(sbatch --parsable deploy/slurm-evaluate.sh MODEL.onnx TEST_DIR OUT_DIR)
#   sbatch --dependency=afterok:$jid --output=report.txt --wrap "toolkit evaluate MODEL.onnx --data TEST_DIR --tta --most-confused --top-losses 16 --plot OUT_DIR/confusion.png --parts OUT_DIR/parts --merge"
# A task that failed runs again alone, as the shard it was:
#   sbatch --array=0 --export=ALL,TOOLKIT_SHARD=2/4 deploy/slurm-evaluate.sh MODEL.onnx TEST_DIR OUT_DIR
#SBATCH --job-name=toolkit-evaluate
#SBATCH --array=0-3
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=8
#SBATCH --mem=8G
#SBATCH --time=4:00:00
#SBATCH --output=evaluate-%A_%a.out
set -euo pipefail
usage="usage: sbatch slurm-evaluate.sh MODEL.onnx TEST_DIR OUT_DIR"
model=${1:?$usage}
test=${2:?$usage}
out=${3:?$usage}
export GOMAXPROCS=$SLURM_CPUS_PER_TASK
# The shard comes from SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT (or TOOLKIT_SHARD).
exec toolkit evaluate "$model" --data "$test" --tta --most-confused --top-losses 16 \
  --plot "$out/confusion.png" --parts "$out/parts"
