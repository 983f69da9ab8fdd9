#!/usr/bin/env bash
# The GPU check of issue #33 ("the GPU at its speed"), prepared for one lent H100 or H200 and
# sized to end within 8 minutes: from the repository root,
#
#   bash benchmarks/perf/gpu_check.sh            # everything under $OUT (default runs/gpu-check)
#
# Parts, in order of what matters most; each runs under its own limit, cut to what is left of the
# whole budget (GPU_CHECK_SECONDS, default 450), so the script always ends and keeps what a part
# finished (perf writes its table after every model; a run keeps its finished runs):
#   1. perf celeba64, every model but BigBiGAN: the fast path with each step captured as one CUDA
#      graph (--capture) against the plain loop, then 5 more steps of each under torch.profiler (the
#      share of time the GPU is busy, its kernels per step); the table names any model left eager
#   1b. the fast path without capture for three models, on the same card: what the graph adds
#   2. perf celeba64 for BigBiGAN (c64), captured, 3 timed steps (its plain loop is slow)
#   3. perf celeba64's evaluation side: InceptionV3 and DINOv2 ViT-L/14 features per second (random
#      weights where the files are missing, labelled), the probe's two back ends
#   4. `tox -e bench-celeba -- --budget smoke`, run directly: every model trained and scored
#   5. BiGAN-QP's critic under TF32: its losses with TF32, again with TF32 (the run-to-run floor),
#      and with --no-tf32, compared step by step
#   6. `sweep digits --jobs 4 --capture`, as far as the time left allows: its seeds' metrics against
#      the committed CPU study's (results/study-digits) say whether captured training matches
# The CelebA folder is written by tests.helpers.make_celeba (generated faces in CelebA's layout).
#
# The lent machine brings PyTorch, timm, scikit-learn and the rest, but not torch-fidelity: carry its
# wheel in wheels/ (ignored by git), fetched here once with
#   pip download torch-fidelity --no-deps -d wheels/
# A lent machine returns at most 8 files from $OUT: the script leaves check.log, the tables and one
# gpu-check.tar.gz of the whole working folder there, refreshed after every part.
set -u -o pipefail
cd "$(dirname "$0")/../.." || exit 2
OUT=${OUT:-runs/gpu-check}
WORK=${GPU_CHECK_WORK:-/tmp/gpu-check}
PY=${PY:-python3}
BUDGET=${GPU_CHECK_SECONDS:-450}
START=$(date +%s)
CELEBA="$WORK/celeba"
export PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$WORK"

log() { echo "[$(date +%H:%M:%S) +$(( $(date +%s) - START ))s] $*" | tee -a "$WORK/check.log"; }

pack() {  # what comes back: the log, the tables, and everything in one archive
    cp "$WORK/check.log" "$OUT/check.log"
    for t in perf-models perf-models-eager perf-bigbigan perf-eval; do
        f=$(ls "$WORK/$t"/*.md 2>/dev/null | head -1)
        [ -n "$f" ] && cp "$f" "$OUT/$t.md"
    done
    [ -f "$WORK/tf32.txt" ] && cp "$WORK/tf32.txt" "$OUT/tf32.txt"
    tar -czf "$OUT/gpu-check.tar.gz" --exclude=celeba --exclude='*.pt' -C "$WORK" . 2>/dev/null
}

part() {  # part NAME LIMIT_S COMMAND...: the command under min(LIMIT_S, time left less a reserve)
    local name=$1 limit=$2 left rc
    shift 2
    left=$(( BUDGET - ($(date +%s) - START) - 20 ))
    [ "$limit" -gt "$left" ] && limit=$left
    if [ "$limit" -lt 15 ]; then
        log "skip $name: ${left}s left"
        return 0
    fi
    log "start $name (limit ${limit}s): $*"
    timeout --kill-after=10 "$limit" "$@" > "$WORK/$name.log" 2>&1
    rc=$?
    log "end $name: exit $rc$([ $rc -eq 124 ] && echo ' (time limit: partial)')"
    pack
    return 0
}

log "gpu check in $WORK, budget ${BUDGET}s, files to $OUT"
if ! $PY -c "import torch_fidelity" 2>/dev/null; then
    wheel=$(ls wheels/torch_fidelity-*.whl 2>/dev/null | head -1)
    if [ -n "$wheel" ]; then
        $PY -m pip install -q --no-index --no-deps "$wheel" >> "$WORK/check.log" 2>&1 && log "installed $wheel"
    else
        log "torch-fidelity missing and no wheel in wheels/: InceptionV3 and DINOv2 timings will fail"
    fi
fi
{ nvidia-smi; $PY -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(), \
torch.cuda.get_device_capability())"; git log --oneline -1 2>/dev/null; } > "$WORK/env.txt" 2>&1
part data 60 $PY -c "from tests.helpers import make_celeba; make_celeba('$CELEBA', 2000)"

MODELS=bigan,ali,bigan-qp-simple,bigan-qp-simple-nosg,bigan-qp-full,bigan-qp-full-nosg,gan-posthoc-encoder,autoencoder,pca,random-init
part perf-models 170 $PY -m benchmarks perf celeba64 --data-root "$CELEBA" --models "$MODELS" --steps 20 --warmup 5 --profile 5 --no-eval --capture --out "$WORK/perf-models"
part perf-models-eager 60 $PY -m benchmarks perf celeba64 --data-root "$CELEBA" --models bigan,ali,bigan-qp-simple --steps 20 --warmup 5 --no-eval --out "$WORK/perf-models-eager"
part perf-bigbigan 100 $PY -m benchmarks perf celeba64 --data-root "$CELEBA" --models bigbigan --steps 3 --warmup 4 --profile 5 --no-eval --capture --out "$WORK/perf-bigbigan"
part perf-eval 60 $PY -m benchmarks perf celeba64 --data-root "$CELEBA" --models pca --steps 2 --warmup 1 --out "$WORK/perf-eval"
part bench-celeba-smoke 90 $PY -m benchmarks run celeba64 --budget smoke --data-root "$CELEBA" --out "$WORK/bench-celeba-smoke"

QP=(celeba64 --budget smoke --data-root "$CELEBA" --models bigan-qp-simple --set train.steps=60 --set train.log_every=1 --no-figures)
part tf32-on 40 $PY -m benchmarks run "${QP[@]}" --out "$WORK/tf32-on"
part tf32-on-again 30 $PY -m benchmarks run "${QP[@]}" --out "$WORK/tf32-on-again"
part tf32-off 30 $PY -m benchmarks run "${QP[@]}" --no-tf32 --out "$WORK/tf32-off"
part tf32-compare 15 $PY -c "
import csv, sys
def losses(name):
    try:
        return list(csv.DictReader(open('$WORK/' + name + '/bigan-qp-simple/seed0/losses.csv')))
    except OSError:
        return None
on, again, off = losses('tf32-on'), losses('tf32-on-again'), losses('tf32-off')
with open('$WORK/tf32.txt', 'w') as out:
    for label, other in (('TF32 twice (the run-to-run floor)', again), ('TF32 against IEEE fp32', off)):
        if not on or not other:
            print(label + ': not measured (a run is missing)', file=out)
            continue
        for key in ('loss_d', 'loss_ge', 'delta_t'):
            d = max(abs(float(a[key]) - float(b[key])) / max(abs(float(b[key])), 1e-6) for a, b in zip(on, other))
            print(f'{label}: {key} largest relative difference over {min(len(on), len(other))} steps {d:.2e}', file=out)
print(open('$WORK/tf32.txt').read())
"

part sweep-digits 600 $PY -m benchmarks sweep digits --jobs 4 --capture --no-figures --out "$WORK/sweep-digits"
log "done"
pack
