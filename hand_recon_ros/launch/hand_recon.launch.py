"""Launch hand_recon_node with the package's config, topic remaps and the main parameters as arguments.

    ros2 launch hand_recon_ros hand_recon.launch.py image:=/camera/color/image_raw \
        camera_info:=/camera/color/camera_info backend:=tensorrt precision:=fp16
"""

from __future__ import annotations

import os

# Launch arguments that become node parameters of the same name (name, default, description).
PARAMETER_ARGUMENTS: tuple[tuple[str, str, str], ...] = (
    ("image_transport", "raw", "raw (sensor_msgs/Image on `image`) or compressed (`image/compressed`)"),
    ("backend", "onnxruntime-cpu", "inference backend"),
    ("precision", "fp16", "TensorRT precision: fp16, fp32 or int8"),
    ("model_variant", "full", "palm/landmark model size: full or lite"),
    ("engine_cache_dir", "", "folder for models and built engines ('' = default cache)"),
    ("mano_dir", "", "folder with the MANO model files ('' = none)"),
    ("mirrored", "false", "input is a mirrored (selfie) view"),
    ("mesh", "false", "compute and publish hand meshes"),
    ("max_hands", "2", "maximum number of hands"),
    ("publish_tf", "true", "broadcast wrist TF frames (needs tf2_ros)"),
)
# Launch arguments that become topic remaps (argument name = the node's relative topic name).
REMAP_ARGUMENTS: tuple[tuple[str, str, str], ...] = (
    ("image", "image", "input image topic (raw transport)"),
    ("camera_info", "camera_info", "CameraInfo topic of that image"),
)
# Integer/bool arguments are converted by the node's parameter types; strings stay strings.
TYPED_ARGUMENTS: dict[str, type] = {"mirrored": bool, "mesh": bool, "publish_tf": bool, "max_hands": int}


def generate_launch_description():  # noqa: ANN201 - launch types are imported lazily
    """The LaunchDescription: arguments, then hand_recon_node with config/hand_recon.yaml plus overrides."""
    from ament_index_python.packages import get_package_share_directory
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node
    from launch_ros.parameter_descriptions import ParameterValue

    config = os.path.join(get_package_share_directory("hand_recon_ros"), "config", "hand_recon.yaml")
    arguments = [DeclareLaunchArgument("params_file", default_value=config, description="node parameter file")]
    arguments += [DeclareLaunchArgument(name, default_value=default, description=text)
                  for name, default, text in PARAMETER_ARGUMENTS + REMAP_ARGUMENTS]
    overrides = {
        name: ParameterValue(LaunchConfiguration(name), value_type=TYPED_ARGUMENTS.get(name, str))
        for name, _, _ in PARAMETER_ARGUMENTS
    }
    node = Node(
        package="hand_recon_ros",
        executable="hand_recon_node",
        name="hand_recon_node",
        output="screen",
        parameters=[LaunchConfiguration("params_file"), overrides],
        # the node follows an `image` remap for `image/compressed` itself (image_transport's convention)
        remappings=[(topic, LaunchConfiguration(name)) for name, topic, _ in REMAP_ARGUMENTS],
    )
    return LaunchDescription([*arguments, node])
