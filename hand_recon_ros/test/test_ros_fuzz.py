"""The suite's fuzz: 500 malformed Image / CompressedImage / CameraInfo messages with good frames interleaved.

Two phases over real DDS (raw, then compressed), the fake pipeline (the pipeline is not the subject, the
node's input handling is): no crash, no traceback, good frames answered during the fuzz and every one of
the probes after it, and the refusals counted in /diagnostics. benchmarks/fuzz_node.py runs >= 10,000.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hand_recon_msgs.msg  # noqa: F401 - built by make setup, never skipped
import pytest
import rclpy  # noqa: F401 - required, never skipped

sys.path.insert(0, str(Path(__file__).parent))
from fuzz_messages import AFTER_FRAMES, run_phase  # noqa: E402
from test_ros_peer import first_pixel_image  # noqa: E402

# Domain IDs 140-169 belong to this branch's DDS tests.
DOMAIN_ID = 160 + os.getpid() % 5  # 160..164
MESSAGES_PER_PHASE = 250


@pytest.mark.parametrize("transport", ["raw", "compressed"])
def test_fuzz_leaves_the_node_answering(transport: str) -> None:
    report = run_phase(DOMAIN_ID, transport, MESSAGES_PER_PHASE, first_pixel_image(3), fake=True)
    print(report)
    assert report.sent == MESSAGES_PER_PHASE
    assert not report.crashed and report.exit_code == 0 and report.tracebacks == 0, report
    assert report.good_answered_during >= 1, report
    assert report.after_answered == AFTER_FRAMES, report
    assert int(report.errors.get("errors (input)", 0)) > 0, report.errors
    assert int(report.errors.get("errors (camera_info)", 0)) > 0, report.errors
    assert len(report.kinds) >= 10, report.kinds
