"""Launch hand_recon_lifecycle_node (managed) with the same arguments as hand_recon.launch.py, plus autostart.

    ros2 launch hand_recon_ros hand_recon_lifecycle.launch.py image:=/camera/color/image_raw \
        camera_info:=/camera/color/camera_info backend:=tensorrt autostart:=true

``autostart:=true`` (default) sends configure at launch (models load, engines build) and activate once the
node is inactive; ``autostart:=false`` leaves the node unconfigured for a lifecycle manager or
``ros2 lifecycle set /hand_recon_node configure``. Parameter and remap arguments come from
hand_recon.launch.py (loaded beside this file); ``launch``/``launch_ros``/``lifecycle_msgs`` are imported
inside the functions only, so this file can be parsed and checked where they are not installed.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

PLAIN_LAUNCH_FILE = "hand_recon.launch.py"
NODE_NAME = "hand_recon_node"
AUTOSTART_ARGUMENT = ("autostart", "true", "configure and activate the node at launch: true or false")


def plain_launch_module() -> Any:
    """hand_recon.launch.py as a module (its argument tables and parameter_overrides are shared)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), PLAIN_LAUNCH_FILE)
    spec = importlib.util.spec_from_file_location("hand_recon_launch", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def autostart_enabled(text: str) -> bool:
    """The autostart argument's value; ValueError naming it when it is not true/false."""
    lowered = text.strip().lower()
    if lowered not in ("true", "false"):
        raise ValueError(f"launch argument autostart must be true or false, got {text!r}")
    return lowered == "true"


def _node(context: Any) -> list:
    from launch.actions import EmitEvent, RegisterEventHandler
    from launch.events import matches_action
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import LifecycleNode
    from launch_ros.event_handlers import OnStateTransition
    from launch_ros.events.lifecycle import ChangeState
    from lifecycle_msgs.msg import Transition

    plain = plain_launch_module()
    configurations = dict(context.launch_configurations)
    node = LifecycleNode(
        package="hand_recon_ros",
        executable="hand_recon_lifecycle_node",
        name=NODE_NAME,
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[LaunchConfiguration("params_file"), plain.parameter_overrides(configurations)],
        additional_env=plain.node_environment(),
        remappings=[(topic, LaunchConfiguration(name)) for name, topic, _ in plain.REMAP_ARGUMENTS],
    )
    actions: list = [node]
    if autostart_enabled(configurations.get("autostart", AUTOSTART_ARGUMENT[1])):
        activate = EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                               transition_id=Transition.TRANSITION_ACTIVATE))
        actions += [
            RegisterEventHandler(OnStateTransition(target_lifecycle_node=node, start_state="configuring",
                                                   goal_state="inactive", entities=[activate])),
            EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                        transition_id=Transition.TRANSITION_CONFIGURE)),
        ]
    return actions


def generate_launch_description():  # noqa: ANN201 - launch types are imported lazily
    """The LaunchDescription: the plain launch file's arguments, namespace, autostart, then the lifecycle node."""
    from ament_index_python.packages import get_package_share_directory
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    plain = plain_launch_module()
    arguments = plain.base_arguments(get_package_share_directory("hand_recon_ros"))
    arguments += [
        DeclareLaunchArgument("namespace", default_value="", description="node namespace"),
        DeclareLaunchArgument(AUTOSTART_ARGUMENT[0], default_value=AUTOSTART_ARGUMENT[1],
                              description=AUTOSTART_ARGUMENT[2]),
    ]
    arguments += [DeclareLaunchArgument(name, default_value="", description=f"{text} ('' = from params_file)")
                  for name, text in plain.PARAMETER_ARGUMENTS]
    arguments += [DeclareLaunchArgument(name, default_value=topic, description=text)
                  for name, topic, text in plain.REMAP_ARGUMENTS]
    return LaunchDescription([*arguments, OpaqueFunction(function=_node)])
