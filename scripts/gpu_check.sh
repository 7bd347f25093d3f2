#!/usr/bin/env bash
# One prepared check for a machine with an NVIDIA GPU (issue 11), in under 8 minutes:
#   1. the GPU tests (HAND_RECON_GPU_TESTS=1: a missing GPU/module fails instead of skipping),
#   2. `hand-recon build-engine` twice per precision: the second run must be a cache hit ("up to date"),
#   3. `hand-recon bench` per backend and precision on one photo, printed as ONE table.
# Usage (from the repository root, after `make setup`):  bash scripts/gpu_check.sh [IMAGE]
# Env: GPU_CHECK_BUDGET_S (default 450) — pieces that would start after this many seconds are skipped, said so.
#      HAND_RECON_CALIB_DIR — INT8 calibration images (default: frames taken from the shared video, if present).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUDGET_S="${GPU_CHECK_BUDGET_S:-450}"
IMAGE="${1:-$ROOT/../shared/data/woman_hands.jpg}"
VIDEO="$ROOT/../shared/data/video/right_hand_motion.mp4"
WORK="$(mktemp -d /tmp/gpu_check.XXXXXX)"
RESULTS="$WORK/results.tsv"
trap 'rm -rf "$WORK"' EXIT

say() { printf '[gpu_check %3ds] %s\n' "$SECONDS" "$*"; }
fail() { say "FAIL: $*"; exit 1; }
time_left() { echo $(( BUDGET_S - SECONDS )); }
have_time() {  # have_time SECONDS_NEEDED LABEL
  if (( $(time_left) < $1 )); then say "SKIP $2: needs ~$1 s, $(time_left) s of the budget left"; return 1; fi
}

# -- prerequisites ----------------------------------------------------------------------------------------
[[ -f "$ROOT/env.sh" ]] || fail "$ROOT/env.sh missing: run 'make setup' first"
# shellcheck source=/dev/null
source "$ROOT/env.sh" || fail "source env.sh failed: run 'make setup' first"
command -v nvidia-smi >/dev/null || fail "nvidia-smi not found: this script needs a machine with an NVIDIA GPU"
timeout 20 nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv,noheader \
  || fail "nvidia-smi cannot talk to the driver"
command -v hand-recon >/dev/null || fail "hand-recon not on PATH: run 'make setup' (and source env.sh)"
[[ -f "$IMAGE" ]] || fail "benchmark image $IMAGE not found: pass one as the first argument"
python - <<'EOF' || say "WARNING: no TensorRT Python bindings: the tensorrt rows will fail (pip install 'tensorrt>=10,<12')"
import tensorrt, sys
print(f"[gpu_check] tensorrt {tensorrt.__version__}", file=sys.stderr)
EOF
python - <<'EOF' || say "WARNING: onnxruntime has no GPU providers: install onnxruntime-gpu for the ORT GPU rows"
import onnxruntime as ort, sys
providers = ort.get_available_providers()
print(f"[gpu_check] onnxruntime {ort.__version__}: {providers}", file=sys.stderr)
sys.exit(0 if "CUDAExecutionProvider" in providers else 1)
EOF

CALIB_DIR="${HAND_RECON_CALIB_DIR:-}"
if [[ -z "$CALIB_DIR" && -f "$VIDEO" ]]; then
  CALIB_DIR="$WORK/calib"
  mkdir -p "$CALIB_DIR"
  python - "$VIDEO" "$CALIB_DIR" <<'EOF'
import sys, cv2
cap, out, i = cv2.VideoCapture(sys.argv[1]), sys.argv[2], 0
while True:
    ok, frame = cap.read()
    if not ok:
        break
    if i % 20 == 10:
        cv2.imwrite(f"{out}/frame{i:04d}.jpg", frame)
    i += 1
EOF
fi
[[ -n "$CALIB_DIR" ]] || say "no calibration images (set HAND_RECON_CALIB_DIR): the int8 rows are skipped"

# -- 1. GPU tests ---------------------------------------------------------------------------------------------
say "GPU tests"
if ( cd "$ROOT/hand_recon_ros" && HAND_RECON_GPU_TESTS=1 timeout 150 python -m pytest -q test/test_engines_gpu.py ); then
  printf 'gpu tests\t-\tpassed\t-\t-\t-\n' >> "$RESULTS"
else
  printf 'gpu tests\t-\tFAILED (rc %s)\t-\t-\t-\n' "$?" >> "$RESULTS"
fi

# -- 2. engines built twice: the second must be a cache hit -----------------------------------------------
build_twice() {  # build_twice PRECISION [extra args]
  local precision="$1"; shift
  local first second
  have_time 150 "build-engine $precision" || return 0
  say "build-engine --precision $precision (first)"
  if ! first="$(timeout 240 hand-recon build-engine --precision "$precision" "$@" 2>&1)"; then
    printf '%s\n' "$first" | tail -n 5
    printf 'build-engine\t%s\tFAILED\t-\t-\t-\n' "$precision" >> "$RESULTS"; return 0
  fi
  printf '%s\n' "$first" | grep -E '^(palm|landmark):' || true
  second="$(timeout 60 hand-recon build-engine --precision "$precision" "$@" 2>&1)" || true
  if [[ "$(grep -c ': up to date' <<<"$second" || true)" == 2 ]]; then
    printf 'build-engine x2\t%s\tcache hit\t-\t-\t-\n' "$precision" >> "$RESULTS"
  else
    printf '%s\n' "$second" | tail -n 5
    printf 'build-engine x2\t%s\tNO CACHE HIT\t-\t-\t-\n' "$precision" >> "$RESULTS"
  fi
  timeout 60 hand-recon build-engine --precision "$precision" "$@" --print-key 2>&1 | sed 's/^/  key: /' || true
}
build_twice fp16
build_twice fp32
if [[ -n "$CALIB_DIR" ]]; then build_twice int8 --calib-dir "$CALIB_DIR"; fi

# -- 3. bench per backend and precision -----------------------------------------------------------------------
bench() {  # bench BACKEND PRECISION
  local backend="$1" precision="$2"
  local extra=()
  if [[ "$precision" == int8 ]]; then
    [[ -n "$CALIB_DIR" ]] || return 0
    extra=(--calib-dir "$CALIB_DIR")
  fi
  have_time 40 "bench $backend $precision" || return 0
  say "bench $backend $precision"
  if timeout 120 hand-recon bench "$IMAGE" --mode image --backend "$backend" --precision "$precision" \
       --repeat 20 --warmup 5 --json "${extra[@]}" >"$WORK/bench.json" 2>"$WORK/bench.err"; then
    python - "$backend" "$precision" "$WORK/bench.json" >> "$RESULTS" <<'EOF'
import json, sys
info = json.load(open(sys.argv[3]))
s = info["stages"]
print(f"bench\t{sys.argv[1]} {sys.argv[2]}\t{info['mean_hands']:.1f} hands\t{s['palm']['median_ms']:.2f}\t"
      f"{s['landmarks']['median_ms']:.2f}\t{s['total']['median_ms']:.2f}")
EOF
  else
    tail -n 3 "$WORK/bench.err"
    printf 'bench\t%s %s\tFAILED\t-\t-\t-\n' "$backend" "$precision" >> "$RESULTS"
  fi
}
for precision in fp32 int8; do bench onnxruntime-cpu "$precision"; done
for precision in fp16 fp32 int8; do bench tensorrt "$precision"; done
for precision in fp32 fp16; do bench onnxruntime-cuda "$precision"; done
for precision in fp16 int8; do bench onnxruntime-tensorrt "$precision"; done

# -- one table ----------------------------------------------------------------------------------------------
echo
echo "GPU check, $(date -u +%FT%TZ), $(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1), ${SECONDS} s"
printf '%-16s %-28s %-14s %10s %10s %10s\n' "step" "what" "result" "palm ms" "lmk ms" "total ms"
while IFS=$'\t' read -r step what result palm lmk total; do
  printf '%-16s %-28s %-14s %10s %10s %10s\n' "$step" "$what" "$result" "$palm" "$lmk" "$total"
done < "$RESULTS"
if grep -qE 'FAILED|NO CACHE HIT' "$RESULTS"; then exit 1; fi
