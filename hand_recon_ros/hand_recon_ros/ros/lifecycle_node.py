"""hand_recon_lifecycle_node: the managed (lifecycle) variant of hand_recon_node, same parameters and topics.

configure loads the models (builds or loads engines); activate subscribes and enables the lifecycle
publishers; deactivate stops output (the frame in progress is finished); cleanup releases everything
(HandPipeline.close()); shutdown is clean from any state and ends the process once finalized. /diagnostics
runs in every state, so a failed configure is visible there as well as in the log. Drive it with
``ros2 lifecycle set /hand_recon_node configure`` (then ``activate``) or a launch system.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.task import Future

from hand_recon_ros.ros.node_core import HandReconCore
from hand_recon_ros.ros.node_start import start_node

NODE_NAME = "hand_recon_node"
# After the finalized state is reached, spin this long so the shutdown service answer reaches its caller (s).
FINALIZE_LINGER_S = 0.5


class HandReconLifecycleNode(HandReconCore, LifecycleNode):
    """Managed ROS 2 node publishing two-hand 3D reconstructions; nothing runs before configure/activate.

    ``pipeline_factory``: called in configure to build an object with HandPipeline's interface; when None,
    a HandPipeline is built from the parameters (models must be cached unless fetch_models is true).
    """

    def __init__(
        self, pipeline_factory: Callable[[], Any] | None = None, node_name: str = NODE_NAME, **node_kwargs: Any
    ) -> None:
        super().__init__(node_name, **node_kwargs)
        self._init_core(None)
        self._pipeline_factory = pipeline_factory
        self._outputs_created = False
        self.finalized: Future = Future()
        self._create_diagnostics()
        self._stats.backend = "not loaded (unconfigured)"
        self.get_logger().info("unconfigured: waiting for the configure transition")

    # -- transitions (executor thread) ------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the pipeline and create the (inactive) outputs; FAILURE with the reason logged when it cannot."""
        self._stats.fatal = None
        try:
            if self._pipeline_factory is not None:
                self._pipeline = self._pipeline_factory()
            self._ensure_pipeline()
        except Exception as exc:  # noqa: BLE001 - a failed configure is reported, the node stays unconfigured
            self._release_pipeline()
            reason = f"configure failed: {type(exc).__name__}: {exc}"
            self._stats.fatal = reason
            self._stats.backend = "not loaded (configure failed)"
            self.get_logger().error(f"{reason}; staying unconfigured")
            return TransitionCallbackReturn.FAILURE
        self._create_outputs(self.create_lifecycle_publisher)
        self._outputs_created = True
        self.get_logger().info("configured: outputs created (inactive)")
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Enable the publishers, subscribe and start the worker threads."""
        result = super().on_activate(state)
        if result != TransitionCallbackReturn.SUCCESS:
            return result
        self._last_stamp_s = None
        self._start_workers()
        self._create_inputs()
        self.get_logger().info(f"active: {self._listening_message()}")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Unsubscribe, let the worker finish its frame, then disable the publishers."""
        self._destroy_inputs()
        self._stop_workers()
        self.get_logger().info("inactive: no subscriptions, no output")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Destroy the outputs and close the pipeline (back to unconfigured)."""
        self._release_all()
        self.get_logger().info("cleaned up: pipeline closed, outputs destroyed")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """From any primary state: stop everything that runs and release it; the process then exits."""
        self._release_all()
        self.get_logger().info(f"shut down from {state.label}")
        self.finalized.set_result(True)
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """A transition raised: release everything and go back to unconfigured."""
        self._release_all()
        self.get_logger().error(f"error in transition from {state.label}; released everything, unconfigured")
        return TransitionCallbackReturn.SUCCESS

    # -- helpers ---------------------------------------------------------------------------------------
    def _release_pipeline(self) -> None:
        """Close and forget the pipeline (HandPipeline.close releases its backends)."""
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None and hasattr(pipeline, "close"):
            pipeline.close()
            self.get_logger().info("pipeline closed")
        self._stats.backend = "not loaded (unconfigured)"

    def _release_all(self) -> None:
        """Undo activate and configure, whatever has been done of them."""
        self._destroy_inputs()
        worker_stopped = self._stop_workers()
        if self._outputs_created:
            tf_publisher = getattr(getattr(self._tf, "_broadcaster", None), "pub_tf", None)
            if tf_publisher is not None:
                self.destroy_publisher(tf_publisher)
            self._destroy_outputs(self.destroy_lifecycle_publisher)
            self._outputs_created = False
        if worker_stopped:  # else the worker still runs a frame on it: leave it open rather than crash it
            self._release_pipeline()

    def close(self) -> None:
        """Release everything and destroy the node. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._release_all()
        self._close_trace()
        self.destroy_node()


def main(args: list[str] | None = None) -> int:
    """Entry point of ``hand_recon_lifecycle_node``; returns the exit status (0 after shutdown or Ctrl-C)."""
    node = start_node(HandReconLifecycleNode, NODE_NAME, args)
    return node if isinstance(node, int) else spin_until_finalized(node)


def spin_until_finalized(node: HandReconLifecycleNode) -> int:
    """Spin until the shutdown transition, Ctrl-C/SIGINT or an external shutdown; then release and exit."""
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin_until_future_complete(node.finalized)
        if node.finalized.done():
            deadline = time.monotonic() + FINALIZE_LINGER_S
            while time.monotonic() < deadline:
                executor.spin_once(timeout_sec=0.05)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.close()
        executor.shutdown()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
