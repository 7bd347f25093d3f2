"""Read an exported learned model's settings from its ONNX metadata (torch-free: used by the pipeline at run time)."""

from __future__ import annotations

import json
from pathlib import Path

from hand_recon_ros.network.config import NetworkConfig

METADATA_KEY = "hand_recon_network_config"


class LearnedModelError(RuntimeError):
    """An exported learned model that is missing, unreadable or not made by ``hand-recon export``."""


def read_network_config(onnx_path: str | Path) -> NetworkConfig:
    """The NetworkConfig stored in an exported model's metadata; a clear error for a missing/foreign/corrupt file."""
    import onnx

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise LearnedModelError(f"learned model {onnx_path} does not exist")
    try:
        proto = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends
        raise LearnedModelError(f"learned model {onnx_path} is not a readable ONNX file "
                                f"({type(exc).__name__}: {exc})") from exc
    meta = {p.key: p.value for p in proto.metadata_props}
    if METADATA_KEY not in meta:
        raise LearnedModelError(f"learned model {onnx_path} has no '{METADATA_KEY}' metadata: not made by "
                                "`hand-recon export`")
    try:
        return NetworkConfig.from_dict(json.loads(meta[METADATA_KEY]), source=f"{onnx_path}: {METADATA_KEY}")
    except (ValueError, TypeError) as exc:
        raise LearnedModelError(str(exc)) from exc
