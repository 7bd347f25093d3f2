"""The learned two-hand network (seed papers): config, model, hand layer, checkpoints and ONNX export."""

from __future__ import annotations

from hand_recon_ros.network.config import NetworkConfig, NetworkConfigError
from hand_recon_ros.network.model import TwoHandNet


def build_model(cfg: NetworkConfig) -> TwoHandNet:
    """The network ``cfg`` describes (random init; backbone weights loaded when the config names them)."""
    return TwoHandNet(cfg)


__all__ = ["NetworkConfig", "NetworkConfigError", "TwoHandNet", "build_model"]
