"""Teleoperation example: a RealSense-style RGB-D camera -> hand_recon_node with depth on and Allegro retargeting.

    ros2 launch realsense2_camera rs_launch.py align_depth.enable:=true          # colour + aligned depth
    ros2 launch hand_recon_ros teleop.launch.py urdf_dir:=/path/to/robot/urdfs

Inputs (remaps, defaults are realsense2_camera 4.x names): ``image`` (colour), ``camera_info`` (its
CameraInfo) and ``depth`` (depth aligned to colour, 16UC1 millimetres). Outputs besides ``hands``:
``hands/<side>/wrist_pose`` for an arm controller and ``hands/<side>/joint_states`` for the robot hand
(docs/teleop.md). The node reads ``params_file`` first, then the teleop settings below, then given arguments.
``launch``/``launch_ros`` are imported inside the functions only, so this file parses where they are absent.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

# Node parameters this example sets on top of params_file (depth on, both Allegro hands, the One-Euro filter
# at the setting benchmarks/bench_one_euro.py found a good trade: about 0.6x the jitter for ~20 ms of ramp lag).
TELEOP_PARAMETERS: dict[str, Any] = {
    "use_depth": "on",
    "retargeting": "allegro_hand_right,allegro_hand_left",
    "one_euro_min_cutoff_hz": 1.0,
    "one_euro_beta": 20.0,
    "one_euro_d_cutoff_hz": 1.0,
}
# Launch arguments that override node parameters (name, description); '' keeps the value above / params_file.
PARAMETER_ARGUMENTS: tuple[tuple[str, str], ...] = (
    ("urdf_dir", "folder holding the robot URDFs the retargeting configs name (required for retargeting)"),
    ("retargeting", "comma-separated dex-retargeting configs (default: allegro_hand_right,allegro_hand_left)"),
    ("backend", "inference backend: onnxruntime-cpu, tensorrt, onnxruntime-cuda, onnxruntime-tensorrt, torch, auto"),
    ("hand_length_m", "the user's hand length, wrist to middle fingertip, metres (0 = adult prior)"),
)
FLOAT_ARGUMENTS: frozenset[str] = frozenset({"hand_length_m"})
# Launch arguments that become topic remaps: (argument = the node's relative topic, default, description).
REMAP_ARGUMENTS: tuple[tuple[str, str, str], ...] = (
    ("image", "/camera/camera/color/image_raw", "colour image topic"),
    ("camera_info", "/camera/camera/color/camera_info", "CameraInfo of the colour image"),
    ("depth", "/camera/camera/aligned_depth_to_color/image_raw", "depth registered to the colour image"),
)


def plain_launch_module() -> Any:
    """hand_recon.launch.py (beside this file) as a module: its launch arguments and node environment are shared."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hand_recon.launch.py")
    spec = importlib.util.spec_from_file_location("hand_recon_launch", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def node_parameters(configurations: dict[str, str]) -> dict[str, Any]:
    """TELEOP_PARAMETERS with the given (non-empty) launch arguments on top, typed for the node."""
    parameters = dict(TELEOP_PARAMETERS)
    for name, _ in PARAMETER_ARGUMENTS:
        text = configurations.get(name, "")
        if text == "":
            continue
        if name in FLOAT_ARGUMENTS:
            try:
                parameters[name] = float(text)
            except ValueError as exc:
                raise ValueError(f"launch argument {name} must be a number, got {text!r}") from exc
        else:
            parameters[name] = text
    return parameters


def _node(context: Any) -> list:
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    return [
        Node(
            package="hand_recon_ros",
            executable="hand_recon_node",
            name="hand_recon_node",
            output="screen",
            parameters=[LaunchConfiguration("params_file"), node_parameters(dict(context.launch_configurations))],
            additional_env=plain_launch_module().node_environment(),
            remappings=[(topic, LaunchConfiguration(topic)) for topic, _, _ in REMAP_ARGUMENTS],
        )
    ]


def generate_launch_description():  # noqa: ANN201 - launch types are imported lazily
    """The LaunchDescription: arguments, then hand_recon_node with params_file, the teleop settings, overrides."""
    from ament_index_python.packages import get_package_share_directory
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    arguments = plain_launch_module().base_arguments(
        get_package_share_directory("hand_recon_ros"), "node parameter file (the teleop settings are applied on top)")
    arguments += [DeclareLaunchArgument(name, default_value="", description=text)
                  for name, text in PARAMETER_ARGUMENTS]
    arguments += [DeclareLaunchArgument(topic, default_value=default, description=text)
                  for topic, default, text in REMAP_ARGUMENTS]
    return LaunchDescription([*arguments, OpaqueFunction(function=_node)])
