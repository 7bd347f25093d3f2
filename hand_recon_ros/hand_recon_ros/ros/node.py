"""hand_recon_node: camera images in; HandArray, RViz markers, overlay, wrist TF and /diagnostics out.

A thin shell around the ROS-free HandPipeline; the callbacks, worker threads and outputs it shares with the
lifecycle variant (lifecycle_node.py) are in node_core.py. The pipeline is built on the worker thread, so
discovery is not held up. Run: ``hand_recon_node --ros-args -r image:=/camera/image_raw -r
camera_info:=/camera/camera_info``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from hand_recon_ros.ros.node_core import (  # noqa: F401 - re-exported: tests and tools import them from here
    DIAGNOSTICS_PERIOD_S,
    LOG_THROTTLE_S,
    OUTPUT_QOS_DEPTH,
    OVERLAY_QOS,
    SENSOR_QOS,
    WORKER_STOP_TIMEOUT_S,
    HandReconCore,
)
from hand_recon_ros.ros.node_start import interrupted_during_start_up, start_node

NODE_NAME = "hand_recon_node"


class HandReconNode(HandReconCore, Node):
    """ROS 2 node publishing two-hand 3D reconstructions of the images it receives.

    ``pipeline``: an object with HandPipeline's interface (``process``, ``update``, ``reset``,
    ``backend_description``); when None, a HandPipeline is built from the parameters on the worker thread.
    """

    def __init__(self, pipeline: Any | None = None, node_name: str = NODE_NAME, **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        self._init_core(pipeline)
        self._create_outputs(self.create_publisher)
        self._create_diagnostics()
        self._create_inputs()
        self._start_workers(on_start=self._ensure_pipeline)
        self.get_logger().info(self._listening_message())

    def close(self) -> None:
        """Stop the worker (finishing the frame it is on), release the pipeline's backends (GPU memory, engines),
        then destroy the node. Idempotent."""
        if self._closed:
            return
        self._closed = True
        worker_stopped = self._stop_workers()
        close_pipeline = getattr(self._pipeline, "close", None)
        if close_pipeline is not None and worker_stopped:
            try:
                close_pipeline()
            except Exception as exc:  # noqa: BLE001 - shutdown goes on; the failure is logged
                self.get_logger().warning(f"closing the pipeline failed ({type(exc).__name__}: {exc})")
        self._close_trace()
        self.destroy_node()


def main(args: list[str] | None = None) -> int:
    """Entry point of ``hand_recon_node`` / ``python -m hand_recon_ros.ros.node``; returns the exit status."""
    node = start_node(HandReconNode, NODE_NAME, args)
    return node if isinstance(node, int) else spin_until_shutdown(node)


def _interrupted_during_start_up() -> int:
    return interrupted_during_start_up(NODE_NAME)


def build_and_spin(factory: Callable[[], HandReconNode]) -> int:
    """Construct the node with ``factory`` and spin it; Ctrl-C at any point (start-up included) exits 0."""
    try:
        node = factory()
    except KeyboardInterrupt:
        return _interrupted_during_start_up()
    except Exception:
        # A SIGINT while the node is being built lets rclpy shut the context down first; the next rcl call (a
        # create_publisher, say) then fails with "context is invalid": that is the Ctrl-C, not a fault.
        if not rclpy.ok():
            return _interrupted_during_start_up()
        raise
    return spin_until_shutdown(node)


def spin_until_shutdown(node: HandReconNode) -> int:
    """Spin ``node`` until Ctrl-C/SIGINT or an external shutdown, then stop its threads and rclpy cleanly."""
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.close()
        executor.shutdown()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
