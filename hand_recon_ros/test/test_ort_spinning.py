"""Idle-thread policy of the ONNX Runtime sessions: landmarks spin during a Run only, the palm session sleeps."""

from __future__ import annotations

import pytest

from hand_recon_ros.engines.onnxruntime_backend import (
    ALLOW_SPINNING_KEY,
    FORCE_SPINNING_STOP_KEY,
    OnnxRuntimeBackend,
)
from hand_recon_ros.pipeline.config import PipelineConfig
from hand_recon_ros.pipeline.hand_pipeline import backend_options


def test_backend_options_spin_only_for_the_landmark_network():
    config = PipelineConfig()
    assert backend_options(config, "landmarks")["allow_spinning"] is True
    assert backend_options(config, "palm")["allow_spinning"] is False
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
