"""Test helpers for the training tests: a tiny model that honours the learned-model output contract.

It stands in for the real network only where a test is about the training machinery (data order, resume,
DDP, checkpoints); tests about learning use the real network from ``hand_recon_ros.network``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional

STRIDE = 4


class TinyContractModel(nn.Module):
    """Conv features → centre heatmaps; features sampled at each centre → 21 2D offsets and 21 3D joints."""

    def __init__(self, input_size: int = 64, width: int = 16) -> None:
        super().__init__()
        self.input_size = input_size
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, 2, 1), nn.ReLU(), nn.Conv2d(width, width, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(width, width, 3, 1, 1), nn.ReLU())
        self.heatmap = nn.Conv2d(width, 2, 1)
        self.pooled = nn.Linear(width, 64)
        self.head = nn.Linear(64 + 2, 21 * 5 + 1 + 16 * 6 + 20 + 3)
        self.root = nn.Linear(2 * 64, 3)

    def forward(self, images: torch.Tensor, centers: torch.Tensor | None = None,
                prior_joints: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        feats = self.features(images)
        heat = self.heatmap(feats)
        b, _, h, w = heat.shape
        if centers is None:
            prob = heat.flatten(2).softmax(-1).view(b, 2, h, w)
            xs = (torch.arange(w, dtype=images.dtype) + 0.5) * self.input_size / w - 0.5
            ys = (torch.arange(h, dtype=images.dtype) + 0.5) * self.input_size / h - 0.5
            centers = torch.stack([(prob.sum(2) * xs).sum(-1), (prob.sum(3) * ys).sum(-1)], -1)
        grid = (centers + 0.5) / self.input_size * 2 - 1
        sampled = functional.grid_sample(feats, grid.view(b, 2, 1, 2), align_corners=False).squeeze(-1).transpose(1, 2)
        hidden = torch.relu(self.pooled(sampled))
        side = torch.eye(2, dtype=images.dtype).expand(b, 2, 2)
        out = self.head(torch.cat([hidden, side], -1))
        kp = centers[:, :, None, :] + out[..., :42].view(b, 2, 21, 2) * self.input_size * 0.25
        joints = out[..., 42:105].view(b, 2, 21, 3) * 0.1
        joints = joints - joints[:, :, :1]
        presence = out[..., 105]
        pose = out[..., 106:202].view(b, 2, 16, 6) + torch.tensor([1.0, 0, 0, 0, 1.0, 0])
        shape = out[..., 202:222]
        camera = out[..., 222:225]
        return {"center_heatmaps": heat, "centers": centers, "presence": presence, "joints_3d": joints,
                "joints_3d_iters": joints[None], "keypoints_2d": kp, "keypoints_2d_iters": kp[None],
                "root_offset": self.root(hidden.flatten(1)) * 0.1, "pose": pose, "shape": shape, "camera": camera}


def tiny_factory(network: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    """A model factory for ``trainer.train``: the tiny contract model at ``network['input_size']``."""
    size = int(network.get("input_size", 64))
    return TinyContractModel(size), {"input_size": size}


def machinery_config(**changes: Any) -> Any:
    """A small toy-set config for the tiny contract model (logs every step; one CPU thread per process)."""
    from hand_recon_ros.training.config import TrainConfig

    data = {"kind": "toy", "toy_samples": 16, "flip_probability": 0.5, "rotation_deg": 20.0}
    base = {"network": {"input_size": 64}, "data": data, "batch_size": 4, "max_steps": 8, "log_every": 1,
            "checkpoint_every": 4, "learning_rate": 3e-3, "cpu_threads": 1}
    base.update(changes)
    return TrainConfig.from_dict(base)
