"""Start-up of either hand_recon node: the process's malloc settings, rclpy.init and the node's constructor, with
every start-up failure turned into one log line and an exit status (2 for bad arguments, parameters, retargeting
files or unbuilt messages; 0 for Ctrl-C), so both entry points behave the same."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

import rclpy

from hand_recon_ros.retargeting.robot_retargeter import RetargetingError
from hand_recon_ros.ros.malloc_tuning import keep_freed_buffers
from hand_recon_ros.ros.parameters import ParameterValueError

NodeT = TypeVar("NodeT")
EXIT_BAD_START = 2


def interrupted_during_start_up(node_name: str) -> int:
    """Ctrl-C/SIGINT before the node finished starting: say so and shut rclpy down; a clean exit (0)."""
    rclpy.logging.get_logger(node_name).info("interrupted during start-up; shutting down")
    rclpy.try_shutdown()
    return 0


def _fatal(node_name: str, message: str) -> int:
    rclpy.logging.get_logger(node_name).fatal(message)
    rclpy.try_shutdown()
    return EXIT_BAD_START


def start_node(factory: Callable[[], NodeT], node_name: str, args: list[str] | None = None) -> NodeT | int:
    """Keep freed frame buffers (ros/malloc_tuning.py), rclpy.init(args) and ``factory()``: the node, or the exit
    status after a start-up failure was reported."""
    malloc_note = keep_freed_buffers()
    try:
        rclpy.init(args=args)
    except RuntimeError as exc:  # rclpy's RCLError: e.g. an unreadable --params-file or malformed --ros-args
        print(f"[FATAL] [{node_name}]: cannot start ROS 2 with these arguments: {exc}", file=sys.stderr)
        return EXIT_BAD_START
    rclpy.logging.get_logger(node_name).info(malloc_note)
    try:
        return factory()
    except KeyboardInterrupt:
        return interrupted_during_start_up(node_name)
    except ParameterValueError as exc:
        return _fatal(node_name, f"invalid parameter: {exc}")
    except RetargetingError as exc:
        return _fatal(node_name, f"retargeting cannot start: {exc}")
    except ModuleNotFoundError as exc:
        if exc.name != "hand_recon_msgs" and not str(exc.name).startswith("hand_recon_msgs."):
            raise
        return _fatal(node_name, f"{exc}: build and source the hand_recon_msgs package (colcon build; source "
                                 "install/setup.bash, or `source env.sh` in the source tree)")
