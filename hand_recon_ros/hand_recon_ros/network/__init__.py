"""The learned two-hand network (seed papers): config, model, hand layer, checkpoints and ONNX export.

Only ``config`` and ``exported_model`` are torch-free; the model is imported on first use so the pipeline can
run an exported model on a machine without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hand_recon_ros.network.config import NetworkConfig, NetworkConfigError

if TYPE_CHECKING:
    from hand_recon_ros.network.model import TwoHandNet


def build_model(cfg: NetworkConfig) -> TwoHandNet:
    """The network ``cfg`` describes (random init; backbone weights loaded when the config names them)."""
    from hand_recon_ros.network.model import TwoHandNet

    return TwoHandNet(cfg)


def __getattr__(name: str) -> Any:
    if name == "TwoHandNet":
        from hand_recon_ros.network.model import TwoHandNet

        return TwoHandNet
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["NetworkConfig", "NetworkConfigError", "TwoHandNet", "build_model"]
