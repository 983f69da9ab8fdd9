#!/bin/bash
# Submit run.sbatch as an array of $TASKS tasks and, once every task has ended, one job that
# merges the tasks' folders into one report in $OUT (`report DIR...` counts each run once).
#   examples/slurm/run.sh                                  (from the repository root)
#   CONFIG=fashion-mnist BUDGET=full TASKS=16 examples/slurm/run.sh
set -euo pipefail
here=$(dirname "$0")
export CONFIG=${CONFIG:-celeba64} BUDGET=${BUDGET:-full} SEEDS=${SEEDS:-0,1,2}
export OUT=${OUT:-runs/$CONFIG-$BUDGET}
TASKS=${TASKS:-8}

array=$(sbatch --parsable --array=1-"$TASKS" "$here/run.sbatch")
array=${array%%;*}  # --parsable prints "id" or "id;cluster"
# afterany: a task that exits 1 (one of its runs crashed, recorded as failed) still has finished runs to
# merge; the merged report counts the failed ones. The shell expands the folders' glob when the job runs.
sbatch --parsable --dependency=afterany:"$array" --job-name=bigan-bench-report --output=slurm-%x-%j.out \
    --wrap "python -m benchmarks report $OUT-shard* --out $OUT"
echo "submitted array $array ($TASKS tasks) and the report job after it: results in $OUT"
