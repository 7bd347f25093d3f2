"""No network at start: missing model files are an error naming `hand-recon models fetch`, never a download.

The real node (plain, in its own process) with an empty model folder and pip pointed at nothing: it must not
try to fetch or convert, must report the fix on /diagnostics and in its log, and must stay up.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from hand_recon_ros.models.model_files import ModelFileError, cached_models

sys.path.insert(0, str(Path(__file__).parent))

# Domain IDs 140-169 belong to this branch's DDS tests.
DOMAIN_ID = 150 + os.getpid() % 5  # 150..154
RECEIVE_TIMEOUT_S = 20.0
NO_NETWORK_ENV = {"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_NO_INDEX": "1"}


def test_cached_models_names_every_missing_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError) as info:
        cached_models("full", tmp_path)
    text = str(info.value)
    assert "hand-recon models fetch --variant full" in text and str(tmp_path) in text
    assert "palm_detection_full.tflite" in text and "hand_landmark_full" in text and ".onnx" in text
    assert list(tmp_path.iterdir()) == [], "checking must not create or fetch anything"


def test_cached_models_accepts_a_complete_cache(model_paths) -> None:
    paths = cached_models("full")
    assert paths == model_paths


def test_cached_models_refuses_a_corrupt_file(tmp_path: Path, model_paths) -> None:
    for source in (model_paths.palm_tflite, model_paths.landmark_tflite):
        (tmp_path / source.name).write_bytes(source.read_bytes()[:-1] + b"x")
    with pytest.raises(ModelFileError, match="palm_detection_full.tflite"):
        cached_models("full", tmp_path)


def test_plain_node_without_models_reports_the_fix_and_stays_up(tmp_path: Path) -> None:
    from test_ros_peer import Peer, start_node, stop_node

    process = start_node(DOMAIN_ID, {"engine_cache_dir": str(tmp_path)}, fake=False, env=NO_NETWORK_ENV)
    peer = Peer(DOMAIN_ID)
    try:
        assert peer.wait_for(lambda: (s := peer.latest_status()) is not None and
                             "hand-recon models fetch" in s.message, RECEIVE_TIMEOUT_S), "no diagnostics naming the fix"
        status = peer.latest_status()
        assert status.level == b"\x02" and "fetch_models" in status.message, status.message
        with peer.lock:
            seen = len(peer.diagnostics)
        time.sleep(2.5)
        with peer.lock:
            assert len(peer.diagnostics) > seen, "the node stopped publishing diagnostics"
        assert process.poll() is None, "the node exited"
        assert list(tmp_path.iterdir()) == [], "the node tried to fetch or convert"
    finally:
        peer.close()
        code, output = stop_node(process)
    assert code == 0, output
    assert "hand-recon models fetch" in output, output
