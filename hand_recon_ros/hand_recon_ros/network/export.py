"""Export a two-hand network to ONNX (opset 17, dynamic batch), checked against torch before the file is written.

Graph inputs: ``images`` (B, 3, S, S) float32 RGB [0, 1], plus ``prior_joints`` (B, 2, 21, 3) in residual mode.
Outputs: EXPORT_OUTPUTS (model.py's contract, names unchanged). The network config is stored in the model
metadata (``hand_recon_network_config``, JSON) so the pipeline reads input size and mode from the file itself.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from hand_recon_ros.network.config import NetworkConfig
from hand_recon_ros.network.exported_model import METADATA_KEY, LearnedModelError, read_network_config
from hand_recon_ros.network.model import TwoHandNet

__all__ = ["EXPORT_OUTPUTS", "ExportError", "LearnedModelError", "export_onnx", "read_network_config"]

ONNX_OPSET = 17
IMAGES_INPUT = "images"
PRIOR_INPUT = "prior_joints"
BATCH_AXIS_NAME = "batch"
EXPORT_OUTPUTS: tuple[str, ...] = ("joints_3d", "keypoints_2d", "presence", "centers", "root_offset", "camera",
                                   "center_heatmaps")
# Largest allowed |ONNX Runtime − torch| over every output on the parity inputs (float32 reorderings only).
PARITY_TOLERANCE = 1e-4
PARITY_BATCH = 2


class ExportError(RuntimeError):
    """The ONNX export failed, is invalid, or does not match torch; the message names the file and output."""


class _ExportWrapper(torch.nn.Module):
    """Positional inputs → the exported outputs as a tuple (what torch.onnx.export traces)."""

    def __init__(self, model: TwoHandNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, prior_joints: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        out = self.model(images, prior_joints=prior_joints)
        return tuple(out[name] for name in EXPORT_OUTPUTS)


def parity_inputs(cfg: NetworkConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic inputs for the parity check (random image batch; plausible prior joints in residual mode)."""
    rng = np.random.default_rng(seed)
    s = cfg.input_size
    feeds = {IMAGES_INPUT: rng.uniform(0.0, 1.0, (PARITY_BATCH, 3, s, s)).astype(np.float32)}
    if cfg.residual:
        prior = rng.normal(0.0, 0.04, (PARITY_BATCH, 2, 21, 3)).astype(np.float32)
        prior[:, :, 0] = 0.0
        feeds[PRIOR_INPUT] = prior
    return feeds


def export_onnx(model: TwoHandNet, onnx_path: str | Path, opset: int = ONNX_OPSET) -> dict[str, float]:
    """Export ``model`` to ``onnx_path``; write it only if every output matches torch within PARITY_TOLERANCE.

    Returns the largest absolute difference per output. The file is written atomically (no half-written model).
    """
    import onnxruntime as ort

    onnx_path = Path(onnx_path)
    cfg = model.cfg
    model = model.eval()
    feeds = parity_inputs(cfg)
    names = list(feeds)
    example = tuple(torch.from_numpy(feeds[n]) for n in names)
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notices
            torch.onnx.export(
                _ExportWrapper(model).eval(), example, buffer, input_names=names, output_names=list(EXPORT_OUTPUTS),
                opset_version=opset, dynamic_axes={n: {0: BATCH_AXIS_NAME} for n in (*names, *EXPORT_OUTPUTS)},
                do_constant_folding=True, dynamo=False,
            )
    except Exception as exc:  # the exporter raises many kinds of errors
        raise ExportError(f"ONNX export to {onnx_path} failed: {type(exc).__name__}: {exc}") from exc
    proto = onnx.load_from_string(buffer.getvalue())
    proto.doc_string = f"hand_recon_ros learned two-hand network ({cfg.backbone}, {cfg.input_size}px)"
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(cfg.to_dict(), sort_keys=True)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"ONNX export to {onnx_path} is invalid: {exc}") from exc
    data = proto.SerializeToString()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = session.run(list(EXPORT_OUTPUTS), feeds)
    with torch.no_grad():
        ref = model(*example[:1], prior_joints=example[1] if cfg.residual else None)
    diffs = {name: float(np.max(np.abs(g - ref[name].numpy()))) for name, g in zip(EXPORT_OUTPUTS, got)}
    worst = max(diffs, key=diffs.get)
    if not diffs[worst] <= PARITY_TOLERANCE:
        raise ExportError(f"ONNX export to {onnx_path}: output '{worst}' differs from torch by {diffs[worst]:.3g} "
                          f"(> {PARITY_TOLERANCE}); the file was not written")
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=onnx_path.parent, prefix=f".{onnx_path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, onnx_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return diffs
