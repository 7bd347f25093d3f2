"""Load a trained two-hand network from a checkpoint file (the training code writes them; see docs/training.md).

A checkpoint is a ``torch.save`` dict: ``{"model": state_dict, "network_config": dict, "train_config": dict,
"step": int, "optimizer": ..., "rng": ...}``; only ``model`` and ``network_config`` are needed here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from hand_recon_ros.network.config import NetworkConfig, NetworkConfigError
from hand_recon_ros.network.model import TwoHandNet

REQUIRED_KEYS: tuple[str, ...] = ("model", "network_config")


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, or lacks / mismatches a field; the message names file and field."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict at ``path`` (CPU tensors), checked for the fields a model needs."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch/pickle raise assorted errors on a corrupt or truncated file
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc})") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"checkpoint {path} holds {type(data).__name__}, expected a dict with {REQUIRED_KEYS}")
    for key in REQUIRED_KEYS:
        if key not in data:
            raise CheckpointError(f"checkpoint {path} has no field '{key}'")
    if not isinstance(data["model"], dict):
        kind = type(data["model"]).__name__
        raise CheckpointError(f"checkpoint {path}: field 'model' must be a state_dict, got {kind}")
    return data


def load_model(path: str | Path, **overrides: Any) -> tuple[TwoHandNet, NetworkConfig]:
    """The model stored at ``path`` (eval mode, CPU) and its config; ``overrides`` replace config fields
    that do not change the weights' shapes (e.g. ``mesh``)."""
    data = read_checkpoint(path)
    try:
        cfg = NetworkConfig.from_dict({**data["network_config"], **overrides}, source=f"{path}: network_config")
    except NetworkConfigError as exc:
        raise CheckpointError(str(exc)) from exc
    # Weights come from the checkpoint, so a backbone weights file named at training time is not needed.
    cfg_no_init = NetworkConfig.from_dict({**cfg.to_dict(), "backbone_weights": None})
    model = TwoHandNet(cfg_no_init)
    try:
        missing, unexpected = model.load_state_dict(data["model"], strict=False)
    except RuntimeError as exc:  # shape mismatches raise even when not strict
        raise CheckpointError(f"checkpoint {path}: field 'model' does not fit network_config: {exc}") from exc
    missing = [k for k in missing if not k.startswith("hand_layer.")]  # template buffers are rebuilt, not stored
    if missing or unexpected:
        raise CheckpointError(f"checkpoint {path}: field 'model' does not fit network_config "
                              f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    return model.eval(), cfg
