"""keep_freed_buffers: frame-sized buffers freed and allocated again on a worker thread are not faulted in afresh."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

SRC_ROOT = Path(__file__).resolve().parents[1]
# A worker thread allocating and freeing three 2 MiB buffers per "frame" (like one image take); prints the minor
# page faults of five frames after two warm-up frames.
PROBE = """
import resource, sys, threading
sys.path.insert(0, sys.argv[2])
from hand_recon_ros.ros.malloc_tuning import keep_freed_buffers
if sys.argv[1] == "tuned":
    print(keep_freed_buffers(), file=sys.stderr)
def frame():
    buffers = [b"x" * (2 << 20) for _ in range(3)]
    del buffers
def run():
    frame(); frame()
    before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    for _ in range(5):
        frame()
    print(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)
worker = threading.Thread(target=run)
worker.start()
worker.join()
"""

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="mallopt thresholds are glibc's")


def _page_faults(mode: str, **env: str) -> tuple[int, str]:
    environment = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"} | env
    done = subprocess.run([sys.executable, "-c", PROBE, mode, str(SRC_ROOT)], capture_output=True, text=True,
                          env=environment, timeout=60, check=True)
    return int(done.stdout.strip()), done.stderr


def test_freed_frame_buffers_are_reused_without_page_faults() -> None:
    default_faults, _ = _page_faults("default")
    if default_faults < 1000:
        pytest.skip(f"this C library keeps freed buffers anyway ({default_faults} page faults)")
    tuned_faults, note = _page_faults("tuned")
    assert "MiB" in note
    assert tuned_faults < default_faults // 10


def test_users_glibc_tunables_win() -> None:
    faults, note = _page_faults("tuned", GLIBC_TUNABLES="glibc.malloc.trim_threshold=1")
    assert "GLIBC_TUNABLES" in note
    assert faults > 1000  # their (here: eager) trimming still applies
