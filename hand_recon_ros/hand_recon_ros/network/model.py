"""TwoHandNet: backbone → single-stage centre heads → global initialisation → K decoupled refinement iterations.

The output contract (side 0 = left, 1 = right; joints in Hand.msg order; S = input size, h = w = S/8):

- ``center_heatmaps`` (B, 2, h, w) logits of each side's hand centre;
- ``centers`` (B, 2, 2) the centres used, input pixels (given, or the soft-argmax of the heatmaps);
- ``presence`` (B, 2) logits that the side's hand is in the image;
- ``joints_3d`` (B, 2, 21, 3) wrist-relative metres, camera axes (x right, y down, z forward);
- ``joints_3d_iters`` (K+1, B, 2, 21, 3) initialisation + each iteration (deep supervision);
- ``keypoints_2d`` (B, 2, 21, 2) input pixels, and ``keypoints_2d_iters`` (K+1, B, 2, 21, 2);
- ``root_offset`` (B, 3) right wrist minus left wrist, metres;
- ``pose`` (B, 2, 16, 6) 6D rotations (hand_layer.py: global + 15 joints); ``shape`` (B, 2, 20) log bone scales
  (0 = adult prior; with ``hand_model: mano``: (B, 2, 10) MANO betas, and pose in MANO's joint order);
  ``camera`` (B, 2, 3) weak perspective (scale px/m, tx, ty = the wrist in input pixels):
  keypoints_2d = scale · joints_3d[..., :2] + (tx, ty);
- ``vertices`` (B, 2, V, 3) wrist-relative metres when ``mesh`` is on.

No data-dependent control flow and no Python loop over data: the graph exports to ONNX as it is.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from hand_recon_ros.network.backbones import create_backbone
from hand_recon_ros.network.config import NetworkConfig
from hand_recon_ros.network.hand_layer import NUM_POSE, NUM_SHAPE, HandLayer, identity_pose_6d
from hand_recon_ros.skeleton import BONES, NUM_JOINTS

FEATURE_STRIDE = 8
NUM_SIDES = 2
# MANO's shape: 10 betas instead of the kinematic hand's 20 log bone scales.
MANO_NUM_SHAPE = 10


def shape_size(cfg: NetworkConfig) -> int:
    """Length of one hand's shape vector: 20 log bone scales (kinematic hand) or 10 MANO betas."""
    return MANO_NUM_SHAPE if cfg.hand_model == "mano" else NUM_SHAPE


def param_size(cfg: NetworkConfig) -> int:
    """Per-hand regressed parameters: pose 6D (16 x 6), shape, camera (log scale, dx, dy)."""
    return NUM_POSE * 6 + shape_size(cfg) + 3
# Weak-perspective scale prior: input sides per metre (a 0.18 m hand spans ~40 % of a two-hand crop).
CAMERA_SCALE_PRIOR_PER_M = 2.0
# Camera translation step: one unit of the raw (dx, dy) moves the wrist by this fraction of the input side.
CAMERA_SHIFT_FRACTION = 0.25
# Raw joint offsets are scaled by this (metres) so a unit output is a 1 cm correction.
JOINT_OFFSET_SCALE_M = 0.01
# 3D positional embedding input scale: metres → roughly unit values.
POSITION_SCALE_PER_M = 10.0
# Initial presence logit (prior probability ~0.12 that a side's hand is there, until trained).
PRESENCE_INIT_LOGIT = -2.0
# Gain of the (non-zero) initialisation of every correction head outside residual mode.
HEAD_INIT_GAIN = 0.01


def skeleton_adjacency() -> np.ndarray:
    """Normalised adjacency (42, 42) of both hands' skeletons with self loops, D^-1/2 (A + I) D^-1/2."""
    a = np.eye(NUM_SIDES * NUM_JOINTS)
    for side in range(NUM_SIDES):
        for p, c in BONES:
            i, j = side * NUM_JOINTS + p, side * NUM_JOINTS + c
            a[i, j] = a[j, i] = 1.0
    d = 1.0 / np.sqrt(a.sum(1))
    return a * d[:, None] * d[None, :]


def _init_head(layer: nn.Linear | nn.Conv2d, zero: bool) -> None:
    """Zero (residual mode: the untrained refiner is the identity) or small random output-layer weights."""
    if zero:
        nn.init.zeros_(layer.weight)
    else:
        nn.init.xavier_uniform_(layer.weight, gain=HEAD_INIT_GAIN)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


class Neck(nn.Module):
    """Top-down fusion of the three backbone maps into one stride-8 map (B, C, S/8, S/8)."""

    def __init__(self, in_channels: tuple[int, ...], dim: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, dim, 1) for c in in_channels)
        self.smooth = nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1), nn.BatchNorm2d(dim), nn.ReLU(inplace=True))

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """[(B, C8, h, w), (B, C16, h/2, w/2), (B, C32, h/4, w/4)] → (B, dim, h, w)."""
        c8, c16, c32 = (lat(f) for lat, f in zip(self.lateral, feats))
        p16 = c16 + functional.interpolate(c32, scale_factor=2.0, mode="nearest")
        p8 = c8 + functional.interpolate(p16, scale_factor=2.0, mode="nearest")
        return self.smooth(p8)


class SelfAttentionBlock(nn.Module):
    """Pre-norm transformer block over the 42 joints (plain matmuls: exports to any ONNX/TensorRT)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, N, D) → (B, N, D)."""
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-1, -2) / float(np.sqrt(d // self.heads)), dim=-1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(b, n, d))
        return x + self.mlp(self.norm2(x))


class GraphConv(nn.Module):
    """Residual graph convolution over the fixed two-hand skeleton adjacency: x + ReLU(LN(A x W))."""

    def __init__(self, dim: int, adjacency: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("adjacency", adjacency)
        self.linear = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 42, D) → (B, 42, D)."""
        return x + functional.relu(self.norm(torch.matmul(self.adjacency, self.linear(x))))


class RefinementIteration(nn.Module):
    """One decoupled refinement step: sample → GCN per hand → transformer over 42 joints → corrections → project."""

    def __init__(self, cfg: NetworkConfig, adjacency: torch.Tensor, project_back: bool = True) -> None:
        super().__init__()
        c, d = cfg.feature_dim, cfg.joint_dim
        self.has_projection = project_back
        self.sample_proj = nn.Linear(c, d)
        self.position = nn.Sequential(nn.Linear(3, d), nn.ReLU(inplace=True), nn.Linear(d, d))
        self.joint_embed = nn.Parameter(torch.randn(NUM_SIDES * NUM_JOINTS, d) * 0.02)
        self.gcn = nn.ModuleList(GraphConv(d, adjacency) for _ in range(cfg.gcn_layers))
        self.transformer = nn.ModuleList(SelfAttentionBlock(d, cfg.transformer_heads)
                                         for _ in range(cfg.transformer_layers))
        self.param_head = nn.Linear(NUM_JOINTS * d, param_size(cfg))
        self.root_head = nn.Linear(NUM_SIDES * NUM_JOINTS * d, 3)
        self.offset_head = nn.Linear(d, 3)
        for head in (self.param_head, self.root_head, self.offset_head):
            _init_head(head, cfg.residual)
        if project_back:  # the last iteration's map would be unused, so it has no projection
            self.bone_proj = nn.Linear(d, c)
            self.fuse = nn.Sequential(nn.Conv2d(2 * c, c, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(c, c, 1))
            _init_head(self.fuse[2], cfg.residual)

    def forward(self, fmap: torch.Tensor, joints: torch.Tensor, kp2d: torch.Tensor, input_size: int
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """fmap (B, C, h, w), joints (B, 2, 21, 3) m, kp2d (B, 2, 21, 2) px → per-joint features (B, 42, D),
        parameter corrections (B, 2, param_size), root correction (B, 3), joint offsets (B, 2, 21, 3) metres."""
        b = fmap.shape[0]
        grid = (kp2d / input_size * 2.0 - 1.0).reshape(b, NUM_SIDES * NUM_JOINTS, 1, 2)
        sampled = functional.grid_sample(fmap, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        sampled = sampled[..., 0].transpose(1, 2)  # (B, 42, C)
        rel = joints.reshape(b, NUM_SIDES * NUM_JOINTS, 3) * POSITION_SCALE_PER_M
        x = self.sample_proj(sampled) + self.position(rel) + self.joint_embed
        for layer in self.gcn:
            x = layer(x)
        for layer in self.transformer:
            x = layer(x)
        d = x.shape[-1]
        params = self.param_head(x.reshape(b, NUM_SIDES, NUM_JOINTS * d))
        root = self.root_head(x.reshape(b, NUM_SIDES * NUM_JOINTS * d))
        offsets = self.offset_head(x).reshape(b, NUM_SIDES, NUM_JOINTS, 3) * JOINT_OFFSET_SCALE_M
        return x, params, root, offsets

    def project_back(self, fmap: torch.Tensor, x: torch.Tensor, kp2d: torch.Tensor, parents: torch.Tensor,
                     children: torch.Tensor, grid_cells: torch.Tensor, sigma_cells: float) -> torch.Tensor:
        """Bone-wise projection of the joint features onto the map (dense weights, no scatter), then fusion.

        Each of the 40 bones paints the mean feature of its two joints with weight exp(−d²/2σ²), d the distance
        (cells) of a map cell to the bone's projected segment. Returns the fused map (B, C, h, w).
        """
        b, c, h, w = fmap.shape
        pts = kp2d.reshape(b, NUM_SIDES * NUM_JOINTS, 2) / FEATURE_STRIDE - 0.5  # cell coordinates
        p, q = pts[:, parents], pts[:, children]  # (B, 40, 2)
        seg = q - p
        rel = grid_cells[None, None] - p[:, :, None]  # (B, 40, hw, 2)
        t = ((rel * seg[:, :, None]).sum(-1) / (seg * seg).sum(-1, keepdim=True).clamp_min(1e-6)).clamp(0.0, 1.0)
        dist2 = ((rel - t[..., None] * seg[:, :, None]) ** 2).sum(-1)
        weights = torch.exp(-dist2 / (2.0 * sigma_cells**2))  # (B, 40, hw)
        bone_feat = self.bone_proj(0.5 * (x[:, parents] + x[:, children]))  # (B, 40, C)
        painted = torch.matmul(bone_feat.transpose(1, 2), weights) / (weights.sum(1)[:, None] + 1.0)
        painted = painted.reshape(b, c, h, w)
        return fmap + self.fuse(torch.cat([fmap, painted], dim=1))


def make_hand_layer(cfg: NetworkConfig) -> nn.Module:
    """The project's kinematic hand (default) or MANO read from ``cfg.mano_dir`` (both MANO_LEFT/RIGHT.pkl)."""
    if cfg.hand_model == "mano":
        from hand_recon_ros.models.mano_loader import load_mano_models
        from hand_recon_ros.network.mano_torch import MANOTorchLayer

        return MANOTorchLayer(load_mano_models(cfg.mano_dir))
    return HandLayer(with_mesh=cfg.mesh)


class TwoHandNet(nn.Module):
    """The learned two-hand network (see the module docstring for the output contract)."""

    def __init__(self, cfg: NetworkConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.num_shape, self.num_params = shape_size(cfg), param_size(cfg)
        c = cfg.feature_dim
        self.backbone = create_backbone(cfg)
        self.neck = Neck(self.backbone.out_channels, c)
        self.center_head = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(c, 2, 1))
        self.attention_head = nn.Conv2d(c, NUM_SIDES, 1)
        self.param_map_head = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True),
                                            nn.Conv2d(c, NUM_SIDES * (self.num_params + 1), 1))
        self.side_embed = nn.Parameter(torch.randn(NUM_SIDES, c) * 0.02)
        hidden = cfg.global_hidden
        self.global_mlp = nn.Sequential(nn.Linear(c, hidden), nn.ReLU(inplace=True),
                                        nn.Linear(hidden, self.num_params + 1))
        self.root_mlp = nn.Sequential(nn.Linear(NUM_SIDES * c, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 3))
        _init_head(self.param_map_head[2], False)
        _init_head(self.global_mlp[2], False)
        _init_head(self.root_mlp[2], False)
        nn.init.constant_(self.center_head[2].bias, -2.0)
        # An untrained model should not report hands: presence starts at sigmoid(PRESENCE_INIT_LOGIT) ~ 0.12.
        with torch.no_grad():
            self.global_mlp[2].bias[-1] = PRESENCE_INIT_LOGIT
        adjacency = torch.tensor(skeleton_adjacency(), dtype=torch.float32)
        self.iterations = nn.ModuleList(RefinementIteration(cfg, adjacency, project_back=k + 1 < cfg.iterations)
                                        for k in range(cfg.iterations))
        self.hand_layer = make_hand_layer(cfg)
        h = cfg.input_size // FEATURE_STRIDE
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(h, dtype=torch.float32),
                                indexing="ij")
        self.register_buffer("grid_cells", torch.stack([xs, ys], -1).reshape(-1, 2))
        self.register_buffer("sides", torch.tensor([0.0, 1.0]))
        parents = [s * NUM_JOINTS + p for s in range(NUM_SIDES) for p, _ in BONES]
        children = [s * NUM_JOINTS + ch for s in range(NUM_SIDES) for _, ch in BONES]
        self.register_buffer("bone_parents", torch.tensor(parents))
        self.register_buffer("bone_children", torch.tensor(children))
        self.register_buffer("wrist_free", torch.ones(NUM_JOINTS, 1).index_fill_(0, torch.tensor([0]), 0.0))

    def _hands(self, pose: torch.Tensor, shape: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Both hands through the hand layer: joints (B, 2, 21, 3), vertices (B, 2, V, 3) | None."""
        b = pose.shape[0]
        sides = self.sides.repeat(b)
        if self.cfg.hand_model == "mano":
            joints, vertices = self.hand_layer(pose, shape)
            return joints, vertices if self.cfg.mesh else None
        joints, vertices = self.hand_layer(pose.reshape(-1, NUM_POSE, 6), shape.reshape(-1, NUM_SHAPE), sides)
        joints = joints.reshape(b, NUM_SIDES, NUM_JOINTS, 3)
        if vertices is not None:
            vertices = vertices.reshape(b, NUM_SIDES, -1, 3)
        return joints, vertices

    def _camera(self, raw: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
        """Raw (B, 2, 3) → weak-perspective (scale px/m, tx, ty px): scale from a prior, wrist near the centre."""
        size = float(self.cfg.input_size)
        scale = size * CAMERA_SCALE_PRIOR_PER_M * torch.exp(raw[..., :1])
        return torch.cat([scale, centers + raw[..., 1:] * size * CAMERA_SHIFT_FRACTION], dim=-1)

    @staticmethod
    def project(joints: torch.Tensor, camera: torch.Tensor) -> torch.Tensor:
        """Weak perspective: joints (..., 21, 3) m, camera (..., 3) → keypoints (..., 21, 2) input pixels."""
        return camera[..., None, :1] * joints[..., :2] + camera[..., None, 1:]

    def forward(self, images: torch.Tensor, centers: torch.Tensor | None = None,
                prior_joints: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """images (B, 3, S, S) RGB [0, 1]; centers (B, 2, 2) px or None; prior_joints (B, 2, 21, 3) m (residual)."""
        cfg = self.cfg
        if cfg.residual and prior_joints is None:
            raise ValueError("residual mode needs prior_joints (B, 2, 21, 3), the landmark pipeline's joints")
        b = images.shape[0]
        fmap = self.neck(self.backbone(images))
        h, w = fmap.shape[-2:]
        heatmaps = self.center_head(fmap)
        if centers is None:  # soft-argmax: differentiable, no peak picking in the graph
            prob = torch.softmax(heatmaps.reshape(b, NUM_SIDES, h * w), dim=-1)
            centers = (prob @ self.grid_cells + 0.5) * FEATURE_STRIDE
        cells = centers / FEATURE_STRIDE - 0.5
        sigma = cfg.center_window * float(w)
        window = -((self.grid_cells[None, None] - cells[:, :, None]) ** 2).sum(-1) / (2.0 * sigma**2)
        attention = torch.softmax(self.attention_head(fmap).reshape(b, NUM_SIDES, h * w) + window, dim=-1)
        pooled = torch.matmul(attention, fmap.reshape(b, -1, h * w).transpose(1, 2)) + self.side_embed
        grid = (centers / cfg.input_size * 2.0 - 1.0)[:, :, None]  # (B, 2, 1, 2)
        read = functional.grid_sample(self.param_map_head(fmap), grid, mode="bilinear", align_corners=False)[..., 0]
        read = read.reshape(b, NUM_SIDES, self.num_params + 1, NUM_SIDES)
        read = torch.stack([read[:, 0, :, 0], read[:, 1, :, 1]], dim=1)  # each side's own channels at its centre
        params = read + self.global_mlp(pooled)  # (B, 2, num_params + 1)
        ns, npar = self.num_shape, self.num_params
        presence = params[..., -1]
        pose = identity_pose_6d(b, NUM_SIDES).to(images) + params[..., : NUM_POSE * 6].reshape(b, NUM_SIDES,
                                                                                                 NUM_POSE, 6)
        shape = params[..., NUM_POSE * 6: NUM_POSE * 6 + ns]
        cam_raw = params[..., NUM_POSE * 6 + ns: npar]
        root = self.root_mlp(pooled.reshape(b, -1))
        offsets = torch.zeros(b, NUM_SIDES, NUM_JOINTS, 3, dtype=images.dtype, device=images.device)
        start = prior_joints if cfg.residual else self._hands(pose, shape)[0]
        joints = start
        camera = self._camera(cam_raw, centers)
        joints_iters, kp_iters = [joints], [self.project(joints, camera)]
        for step in self.iterations:
            kp2d = kp_iters[-1]
            x, d_params, d_root, d_off = step(fmap, joints, kp2d, cfg.input_size)
            pose = pose + d_params[..., : NUM_POSE * 6].reshape(b, NUM_SIDES, NUM_POSE, 6)
            shape = shape + d_params[..., NUM_POSE * 6: NUM_POSE * 6 + ns]
            cam_raw = cam_raw + d_params[..., NUM_POSE * 6 + ns:]
            root = root + d_root
            offsets = offsets + d_off * self.wrist_free
            base = prior_joints if cfg.residual else self._hands(pose, shape)[0]
            joints = base + offsets
            camera = self._camera(cam_raw, centers)
            joints_iters.append(joints)
            kp_iters.append(self.project(joints, camera))
            if step.has_projection:
                fmap = step.project_back(fmap, x, kp2d, self.bone_parents, self.bone_children, self.grid_cells,
                                         cfg.bone_sigma_cells)
        out = {
            "center_heatmaps": heatmaps,
            "centers": centers,
            "presence": presence,
            "joints_3d": joints,
            "joints_3d_iters": torch.stack(joints_iters),
            "keypoints_2d": kp_iters[-1],
            "keypoints_2d_iters": torch.stack(kp_iters),
            "root_offset": root,
            "pose": pose,
            "shape": shape,
            "camera": camera,
        }
        if cfg.mesh:
            out["vertices"] = self._hands(pose, shape)[1]
        return out
