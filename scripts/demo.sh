#!/usr/bin/env bash
# `make demo`: run the hand pipeline on the CPU default on $INPUT (a file, folder or video), else on /dev/video0.
# Part 1 (ROS-free): `hand-recon run` writes demo_output/hands.jsonl and overlay images.
# Part 2 (ROS 2 over DDS): `hand-recon publish` → hand_recon_node → `hands`, with a printed summary.
# Fetches and converts the model files first if needed. DEMO_ROS=0 skips part 2.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT_DIR="${OUT_DIR:-$ROOT/demo_output}"
SAMPLE="$ROOT/../shared/data/woman_hands.jpg"

# shellcheck disable=SC1091
source "$ROOT/env.sh"

INPUT="${INPUT:-${1:-}}"
if [ -z "$INPUT" ]; then
    if [ -e /dev/video0 ]; then
        INPUT=/dev/video0
    else
        echo "make demo: nothing to run on: no INPUT given and no camera at /dev/video0." >&2
        echo "  Pass an image, a folder of images or a video:  make demo INPUT=path/to/photo.jpg" >&2
        if [ -f "$SAMPLE" ]; then
            echo "  For example:  make demo INPUT=$(realpath "$SAMPLE")" >&2
        fi
        exit 2
    fi
fi
if [ "$INPUT" != /dev/video0 ] && [ ! -e "$INPUT" ]; then
    echo "make demo: INPUT '$INPUT' does not exist." >&2
    exit 2
fi

# Model files (download + verify + convert once; cached under ~/.cache/hand_recon_ros).
python -c "from hand_recon_ros.models.model_files import ensure_models; ensure_models('full')"

mkdir -p "$OUT_DIR/overlays"
echo "running on $INPUT -> $OUT_DIR/hands.jsonl, overlays in $OUT_DIR/overlays" >&2
hand-recon run "$INPUT" --output "$OUT_DIR/hands.jsonl" --overlay-dir "$OUT_DIR/overlays" ${DEMO_ARGS:-}
python - "$OUT_DIR/hands.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    rec = json.loads(line)
    if "error" in rec:
        print(f"{rec['source']}#{rec['frame']}: ERROR {rec['error']}")
        continue
    hands = ", ".join(f"{h['side']} ({h['score']:.2f})" for h in rec["hands"]) or "no hands"
    print(f"{rec['source']}#{rec['frame']}: {hands}  [{rec['timing_ms']['total']:.1f} ms]")
PY

if [ "${DEMO_ROS:-1}" = 0 ]; then
    exit 0
fi
echo >&2
echo "ROS 2 chain: hand-recon publish $INPUT -> hand_recon_node -> hands (real rclpy over Fast DDS)" >&2
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-42}"
hand_recon_node --ros-args -p mode:=video > "$OUT_DIR/node.log" 2>&1 &
NODE_PID=$!
stop_node() { kill -INT "$NODE_PID" 2>/dev/null || true; wait "$NODE_PID" 2>/dev/null || true; }
trap stop_node EXIT
PUBLISH_SOURCE="$INPUT"
[ "$INPUT" = /dev/video0 ] && PUBLISH_SOURCE=0
hand-recon publish "$PUBLISH_SOURCE" --loop --count "${DEMO_FRAMES:-30}" --rate "${DEMO_RATE:-10}" --summary \
    --wait-for-subscriber 30
stop_node
trap - EXIT
echo "node log: $OUT_DIR/node.log" >&2
