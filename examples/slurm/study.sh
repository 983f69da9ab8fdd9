#!/bin/bash
# Submit a study's phases as SLURM job arrays, each starting only when every task of the one
# before it has succeeded (--dependency=afterok): select (every trial on the first selection
# seed), confirm (the best trials on the other selection seeds), final (the chosen settings, arms
# and references on test). A last, single job runs the final phase unsharded: its runs are all
# finished by then, so it only writes selection.json and the study report (study.md).
#   examples/slurm/study.sh                                (from the repository root)
#   STUDY=toy2d TASKS=4 examples/slurm/study.sh
set -euo pipefail
here=$(dirname "$0")
export STUDY=${STUDY:-digits}
export OUT=${OUT:-runs/study-$STUDY}
TASKS=${TASKS:-8}

after=()  # no dependency for the first phase (${after[@]+...}: an empty array under set -u in older bash)
for phase in select confirm final; do
    job=$(sbatch --parsable --array=1-"$TASKS" ${after[@]+"${after[@]}"} "$here/study.sbatch" "$phase")
    job=${job%%;*}  # --parsable prints "id" or "id;cluster"
    echo "$phase: array $job"
    after=(--dependency=afterok:"$job")
done
sbatch --parsable "${after[@]}" --job-name=bigan-study-report --output=slurm-%x-%j.out \
    --wrap "python -m benchmarks sweep $STUDY --phase final --out $OUT"
echo "results in $OUT (study.md once the report job has run)"
