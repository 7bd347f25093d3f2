"""Idle-thread policy of the ONNX Runtime sessions: spinning (when asked for) never outlives a Run."""

from __future__ import annotations

import pytest

from hand_recon_ros.engines.onnxruntime_backend import (
    ALLOW_SPINNING_KEY,
    FORCE_SPINNING_STOP_KEY,
    OnnxRuntimeBackend,
)
from hand_recon_ros.pipeline.config import PipelineConfig
from hand_recon_ros.pipeline.hand_pipeline import NETWORKS, SPINNING_NETWORKS, backend_options


def test_backend_options_follow_the_spinning_policy():
    config = PipelineConfig()
    for network in NETWORKS:
        assert backend_options(config, network)["allow_spinning"] is (network in SPINNING_NETWORKS)
    with pytest.raises(ValueError, match="network must be one of"):
        backend_options(config, "lift")


@pytest.mark.parametrize("spin", [True, False])
def test_session_spinning_entries(model_paths, spin):
    backend = OnnxRuntimeBackend(model_paths.palm_onnx, allow_spinning=spin).load()
    try:
        options = backend._session.get_session_options()
        assert options.get_session_config_entry(ALLOW_SPINNING_KEY) == ("1" if spin else "0")
        if spin:  # spinning never outlives a Run
            assert options.get_session_config_entry(FORCE_SPINNING_STOP_KEY) == "1"
    finally:
        backend.close()
