"""Launch hand_recon_node with the package's config, topic remaps and the main parameters as arguments.

    ros2 launch hand_recon_ros hand_recon.launch.py image:=/camera/color/image_raw \
        camera_info:=/camera/color/camera_info backend:=tensorrt precision:=fp16

Parameter arguments left empty keep the value from ``params_file`` (config/hand_recon.yaml by default);
a given one overrides it. ``launch``/``launch_ros`` are imported inside the functions only, so this file
can be parsed and checked where they are not installed.
"""

from __future__ import annotations

import os
from typing import Any

# Launch arguments that override node parameters of the same name (name, description); '' = keep params_file.
PARAMETER_ARGUMENTS: tuple[tuple[str, str], ...] = (
    ("image_transport", "raw (sensor_msgs/Image on `image`) or compressed (`image/compressed`)"),
    ("backend", "inference backend: litert, onnxruntime-cpu, tensorrt, onnxruntime-cuda, onnxruntime-tensorrt, "
                "torch, auto"),
    ("precision", "network precision: auto (fp16 on TensorRT, fp32 elsewhere), fp32, fp16 or int8"),
    ("calib_dir", "folder of INT8 calibration images (precision int8)"),
    ("model_variant", "palm/landmark model size: full or lite"),
    ("models_dir", "folder of the model files"),
    ("engine_cache_dir", "folder for built engines only (alone: the model folder, deprecated)"),
    ("mano_dir", "folder with the MANO model files"),
    ("reconstructor", "2D + 3D per hand: landmarks or learned"),
    ("learned_model", "ONNX file from `hand-recon export` (reconstructor learned)"),
    ("mirrored", "input is a mirrored (selfie) view: true or false"),
    ("mesh", "compute and publish hand meshes: true or false"),
    ("max_hands", "maximum number of hands"),
    ("publish_tf", "broadcast wrist TF frames (needs tf2_ros): true or false"),
)
# ROS 2 distributions on Fast DDS 2.x, which reads the profile file from FASTRTPS_DEFAULT_PROFILES_FILE; later
# ones (Fast DDS 3.x, Kilted) read FASTDDS_DEFAULT_PROFILES_FILE and warn while the old name is set.
FAST_DDS_2_DISTROS: frozenset[str] = frozenset({"humble", "iron", "jazzy"})


def profile_env_vars(ros_distro: str | None) -> tuple[str, ...]:
    """The environment variables that must name the Fast DDS profile for the node under ``ros_distro``."""
    if (ros_distro or "").lower() in FAST_DDS_2_DISTROS:
        return ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
    return ("FASTDDS_DEFAULT_PROFILES_FILE",)


def node_environment() -> dict[str, Any]:
    """``additional_env`` for a hand_recon node process: the ``fastdds_profile`` argument under every name this
    distro's Fast DDS reads (shared by the plain, lifecycle and teleop launch files)."""
    from launch.substitutions import LaunchConfiguration

    return {name: LaunchConfiguration("fastdds_profile") for name in profile_env_vars(os.environ.get("ROS_DISTRO"))}


def base_arguments(share: str, params_description: str = "node parameter file") -> list:
    """The ``params_file`` and ``fastdds_profile`` launch arguments every hand_recon launch file declares."""
    from launch.actions import DeclareLaunchArgument
    from launch.substitutions import EnvironmentVariable

    return [
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "hand_recon.yaml"),
                              description=params_description),
        # The node publishes and receives large messages (images, mesh markers): a big shared-memory segment
        # keeps Fast DDS from dropping them; an existing FASTDDS_DEFAULT_PROFILES_FILE wins.
        DeclareLaunchArgument(
            "fastdds_profile",
            default_value=EnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE",
                                              default_value=os.path.join(share, "config", "fastdds_shm.xml")),
            description="Fast DDS profile XML for the node process",
        ),
    ]


# Launch arguments that become topic remaps (argument name = the node's relative topic name, default).
REMAP_ARGUMENTS: tuple[tuple[str, str, str], ...] = (
    ("image", "image", "input image topic (image/compressed follows it)"),
    ("camera_info", "camera_info", "CameraInfo topic of that image"),
)
BOOL_ARGUMENTS: frozenset[str] = frozenset({"mirrored", "mesh", "publish_tf"})
INT_ARGUMENTS: frozenset[str] = frozenset({"max_hands"})


def typed_value(name: str, text: str) -> Any:
    """The parameter value for a launch argument's text; ValueError naming the argument when it does not parse."""
    if name in BOOL_ARGUMENTS:
        lowered = text.strip().lower()
        if lowered not in ("true", "false"):
            raise ValueError(f"launch argument {name} must be true or false, got {text!r}")
        return lowered == "true"
    if name in INT_ARGUMENTS:
        try:
            return int(text)
        except ValueError as exc:
            raise ValueError(f"launch argument {name} must be an integer, got {text!r}") from exc
    return text


def parameter_overrides(configurations: dict[str, str]) -> dict[str, Any]:
    """Node parameters for the launch arguments that were given (non-empty)."""
    return {
        name: typed_value(name, configurations[name])
        for name, _ in PARAMETER_ARGUMENTS
        if configurations.get(name, "") != ""
    }


def _node(context: Any) -> list:
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    overrides = parameter_overrides(dict(context.launch_configurations))
    return [
        Node(
            package="hand_recon_ros",
            executable="hand_recon_node",
            name="hand_recon_node",
            output="screen",
            parameters=[LaunchConfiguration("params_file"), overrides],
            additional_env=node_environment(),
            # the node follows an `image` remap for `image/compressed` itself (image_transport's convention)
            remappings=[(topic, LaunchConfiguration(name)) for name, topic, _ in REMAP_ARGUMENTS],
        )
    ]


def generate_launch_description():  # noqa: ANN201 - launch types are imported lazily
    """The LaunchDescription: arguments, then hand_recon_node with params_file plus the given overrides."""
    from ament_index_python.packages import get_package_share_directory
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    arguments = base_arguments(get_package_share_directory("hand_recon_ros"))
    arguments += [DeclareLaunchArgument(name, default_value="", description=f"{text} ('' = from params_file)")
                  for name, text in PARAMETER_ARGUMENTS]
    arguments += [DeclareLaunchArgument(name, default_value=topic, description=text)
                  for name, topic, text in REMAP_ARGUMENTS]
    return LaunchDescription([*arguments, OpaqueFunction(function=_node)])
