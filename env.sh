# Source me (bash/zsh): activates .venv, the colcon-built hand_recon_msgs and the project's console scripts.
# ROS_DISTRO=jazzy selects the Jazzy set-up instead (.venv-jazzy, install-jazzy/: `make setup ROS_DISTRO=jazzy`).
# shellcheck shell=bash
_HR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]:-${(%):-%x}}")" && pwd)"
case "${ROS_DISTRO:-kilted}" in
    kilted) _HR_SUFFIX="" ;;
    jazzy) _HR_SUFFIX="-jazzy" ;;
    *) echo "hand_recon_ros: env.sh is for the PyPI set-up (ROS_DISTRO kilted or jazzy), got '$ROS_DISTRO'" >&2
       unset _HR_ROOT
       return 2 2>/dev/null || exit 2 ;;
esac
_HR_MSGS="$_HR_ROOT/install$_HR_SUFFIX/hand_recon_msgs"
_HR_VENV="$_HR_ROOT/.venv$_HR_SUFFIX"
if [ ! -x "$_HR_VENV/bin/python" ] || [ ! -d "$_HR_MSGS/lib" ]; then
    echo "hand_recon_ros: not set up yet; run 'make setup${_HR_SUFFIX:+ ROS_DISTRO=jazzy}' in $_HR_ROOT" >&2
    unset _HR_ROOT _HR_MSGS _HR_VENV _HR_SUFFIX
    return 1 2>/dev/null || exit 1
fi
export ROS_DISTRO="${ROS_DISTRO:-kilted}"
# Drop this checkout's paths of a previous `source env.sh` (possibly the other distro) before adding ours.
for _HR_VAR in AMENT_PREFIX_PATH CMAKE_PREFIX_PATH PYTHONPATH LD_LIBRARY_PATH; do
    _HR_KEPT="$(eval "printf '%s' \"\${$_HR_VAR:-}\"" | tr ':' '\n' | grep -v -e "^$_HR_ROOT/" -e '^$' | paste -sd: || true)"
    if [ -n "$_HR_KEPT" ]; then export "$_HR_VAR=$_HR_KEPT"; else unset "$_HR_VAR"; fi
done
unset _HR_VAR _HR_KEPT
# shellcheck disable=SC1091
source "$_HR_VENV/bin/activate"
_HR_PYVER="$(python -c 'import sys; print(f"python{sys.version_info[0]}.{sys.version_info[1]}")')"
export AMENT_PREFIX_PATH="$_HR_MSGS:$_HR_VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$_HR_MSGS:$_HR_VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export PYTHONPATH="$_HR_MSGS/lib/$_HR_PYVER/site-packages${PYTHONPATH:+:$PYTHONPATH}"
export LD_LIBRARY_PATH="$_HR_MSGS/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
# Large images over Fast DDS on one host need a bigger shared-memory segment (README, "Large images").
export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$_HR_ROOT/hand_recon_ros/config/fastdds_shm.xml}"
# Fast DDS 2.x (Jazzy) reads the profile from FASTRTPS_DEFAULT_PROFILES_FILE; 3.x (Kilted) reads the above and
# warns on every start while the old name is set, so Kilted drops the one a Jazzy env.sh set.
if [ "$ROS_DISTRO" = jazzy ]; then
    export FASTRTPS_DEFAULT_PROFILES_FILE="${FASTRTPS_DEFAULT_PROFILES_FILE:-$FASTDDS_DEFAULT_PROFILES_FILE}"
elif [ "${FASTRTPS_DEFAULT_PROFILES_FILE:-}" = "$_HR_ROOT/hand_recon_ros/config/fastdds_shm.xml" ]; then
    unset FASTRTPS_DEFAULT_PROFILES_FILE
fi
unset _HR_ROOT _HR_MSGS _HR_PYVER _HR_VENV _HR_SUFFIX
