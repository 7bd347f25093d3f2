# Source me (bash/zsh): activates .venv, the colcon-built hand_recon_msgs and the project's console scripts.
# shellcheck shell=bash
_HR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]:-${(%):-%x}}")" && pwd)"
_HR_MSGS="$_HR_ROOT/install/hand_recon_msgs"
if [ ! -x "$_HR_ROOT/.venv/bin/python" ] || [ ! -d "$_HR_MSGS/lib" ]; then
    echo "hand_recon_ros: not set up yet; run 'make setup' in $_HR_ROOT" >&2
    unset _HR_ROOT _HR_MSGS
    return 1 2>/dev/null || exit 1
fi
# shellcheck disable=SC1091
source "$_HR_ROOT/.venv/bin/activate"
_HR_PYVER="$(python -c 'import sys; print(f"python{sys.version_info[0]}.{sys.version_info[1]}")')"
case ":${AMENT_PREFIX_PATH:-}:" in *":$_HR_MSGS:"*) ;; *)
    export AMENT_PREFIX_PATH="$_HR_MSGS:$_HR_ROOT/.venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
    export CMAKE_PREFIX_PATH="$_HR_MSGS:$_HR_ROOT/.venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
    export PYTHONPATH="$_HR_MSGS/lib/$_HR_PYVER/site-packages${PYTHONPATH:+:$PYTHONPATH}"
    export LD_LIBRARY_PATH="$_HR_MSGS/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    ;;
esac
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
# Large images over Fast DDS on one host need a bigger shared-memory segment (README, "Large images").
export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$_HR_ROOT/hand_recon_ros/config/fastdds_shm.xml}"
unset _HR_ROOT _HR_MSGS _HR_PYVER
