#!/usr/bin/env bash
# The speed issue's GPU figures in one call of the lent GPU machine (the `device` tool), which
# has PyTorch with CUDA but no registry: the Python packages multiq needs beyond its image travel
# as wheels in .whl/ (Python 3.12 builds).
#
# Here, once:  bash benchmarks/device_check.sh --wheels      (downloads them into .whl/)
# There:       run(command="bash benchmarks/device_check.sh", carry=[".whl"], timeout_s=540)
#
# It prints the GPU and the versions, runs a short `multiq train --device cuda` and `multiq eval`
# of the five MinAtar games (the CUDA path end to end: pinned one-copy batches, the async
# collector beside a CUDA learner), then `benchmarks/scale.py --device cuda` (env steps/s at 8
# replay samples per env step, in process, async and with worker processes; target 20,000 on one
# H100). Each step has its own time limit; the results go to $OUT (default benchmarks/results).
# SCALE_STEPS (env steps per game of each scale setting) and SCALE_N_ENVS size the run.
set -uo pipefail
cd "$(dirname "$0")/.."

WHEELS=(gymnasium==1.4.0 farama-notifications==0.0.6 MinAtar==1.0.15 ale-py==0.12.1)
if [[ "${1:-}" == "--wheels" ]]; then
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
  exec python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "${WHEELS[@]}"
fi

OUT="${OUT:-benchmarks/results}"
PY="${PYTHON:-python3}"
if compgen -G ".whl/*.whl" > /dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="$PWD:/tmp/site"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
DEVICE="${DEVICE:-cuda}"
RUN="${TMPDIR:-/tmp}/multiq-device-check"
rm -rf "$RUN"

step() {  # step NAME SECONDS COMMAND...: runs it with a limit, its output to $OUT/NAME.log too
  local name=$1 limit=$2
  shift 2
  echo "== $name ($(date -u +%H:%M:%S), limit ${limit}s)"
  timeout "$limit" "$@" 2>&1 | tee "$OUT/device-$name.log"
  echo "== $name: exit ${PIPESTATUS[0]}"
}

mkdir -p "$OUT"
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
"$PY" -c "import torch, gymnasium, minatar; print('torch', torch.__version__, 'cuda', \
torch.cuda.is_available(), 'gymnasium', gymnasium.__version__); print('cores', __import__('os').cpu_count())"

step train 120 "$PY" -m multiq.cli train --tasks minatar --steps 3000 --device "$DEVICE" \
  --run-dir "$RUN/train" --async-updates true --set learning_starts=500 --set eval_episodes=2 \
  --set progress_bar=false --set tensorboard=false
step eval 60 "$PY" -m multiq.cli eval "$RUN/train" --episodes 2 --device "$DEVICE"
step scale 420 "$PY" benchmarks/scale.py --device "$DEVICE" --n-envs ${SCALE_N_ENVS:-8 32 64} \
  --steps-per-game "${SCALE_STEPS:-20000}" --workers 3 --out "$OUT/scale-$DEVICE.md"
