"""MANO as a batched differentiable torch layer for the two-hand network (when the user has the MANO files).

Same maths as models/mano_layer.py (numpy): shape and pose blend shapes, joint regression, rigid transforms
along the 16-joint tree, linear blend skinning. Pose comes as 6D rotations (N, 16, 6) in MANO's joint order
(global first; wrist, index 1-3, middle 1-3, pinky 1-3, ring 1-3, thumb 1-3), shape as betas (N, 10).
The MANO arrays are non-persistent buffers: they are never written into checkpoints or copied from them;
a checkpoint names ``mano_dir`` and the files are read from there again.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hand_recon_ros.models.mano_layer import MANO_TO_OURS
from hand_recon_ros.models.mano_loader import FINGERTIP_VERTICES, NUM_MANO_JOINTS, MANOModel
from hand_recon_ros.network.hand_layer import rotation_6d_to_matrix
from hand_recon_ros.skeleton import SIDES


def mano_forward(pose6d: torch.Tensor, betas: torch.Tensor, v_template: torch.Tensor, shapedirs: torch.Tensor,
                 posedirs: torch.Tensor, j_regressor: torch.Tensor, weights: torch.Tensor,
                 parents: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Posed MANO in its model frame: vertices (N, 778, 3) and our 21 joints (N, 21, 3), metres.

    pose6d (N, 16, 6); betas (N, 10); v_template (V, 3); shapedirs (V, 3, 10); posedirs (V, 3, 135);
    j_regressor (16, V); weights (V, 16); parents: MANO's kinematic tree (-1 for the root).
    """
    v_shaped = v_template + torch.einsum("vck,nk->nvc", shapedirs, betas)
    rest = torch.einsum("jv,nvc->njc", j_regressor, v_shaped)  # (N, 16, 3)
    rot = rotation_6d_to_matrix(pose6d)  # (N, 16, 3, 3)
    eye = torch.eye(3, dtype=pose6d.dtype, device=pose6d.device)
    pose_feature = (rot[:, 1:] - eye).reshape(rot.shape[0], -1)
    v_posed = v_shaped + torch.einsum("vcp,np->nvc", posedirs, pose_feature)
    g_rot, g_trans = [rot[:, 0]], [rest[:, 0]]
    for i in range(1, len(parents)):  # the fixed tree, unrolled (no data-dependent control flow)
        p = parents[i]
        g_rot.append(g_rot[p] @ rot[:, i])
        g_trans.append(torch.einsum("nij,nj->ni", g_rot[p], rest[:, i] - rest[:, p]) + g_trans[p])
    rotations, translations = torch.stack(g_rot, 1), torch.stack(g_trans, 1)
    offsets = translations - torch.einsum("njab,njb->nja", rotations, rest)
    blended_r = torch.einsum("vj,njab->nvab", weights, rotations)
    blended_t = torch.einsum("vj,nja->nva", weights, offsets)
    vertices = torch.einsum("nvab,nvb->nva", blended_r, v_posed) + blended_t
    tips = vertices[:, list(FINGERTIP_VERTICES)]
    joints = torch.cat([translations, tips], dim=1)[:, list(MANO_TO_OURS)]
    return vertices, joints


class MANOTorchLayer(nn.Module):
    """Both MANO hands: forward(pose (B, 2, 16, 6), betas (B, 2, 10)) → wrist-relative joints (B, 2, 21, 3) and
    vertices (B, 2, 778, 3), metres; side 0 = left (MANO_LEFT), 1 = right (MANO_RIGHT); the global rotation
    maps MANO's model axes to camera axes."""

    def __init__(self, models: dict[str, MANOModel]) -> None:
        super().__init__()
        missing = [s for s in SIDES if s not in models]
        if missing:
            raise ValueError(f"the two-hand network needs both MANO models; missing {missing}")
        parents = tuple(int(p) for p in models["right"].parents)
        if len(parents) != NUM_MANO_JOINTS or tuple(int(p) for p in models["left"].parents) != parents:
            raise ValueError("MANO_LEFT and MANO_RIGHT must share the 16-joint kinematic tree")
        self.parents = parents
        self.faces = {s: np.asarray(models[s].faces) for s in SIDES}
        for name, attr in (("v_template", "v_template"), ("shapedirs", "shapedirs"), ("posedirs", "posedirs"),
                           ("j_regressor", "j_regressor"), ("weights", "weights")):
            stacked = np.stack([np.asarray(getattr(models[s], attr), dtype=np.float32) for s in SIDES])
            self.register_buffer(name, torch.from_numpy(stacked), persistent=False)

    @property
    def num_vertices(self) -> int:
        """Vertices per MANO hand (778)."""
        return int(self.v_template.shape[1])

    def forward(self, pose: torch.Tensor, betas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Joints (B, 2, 21, 3) and vertices (B, 2, 778, 3), wrist-relative, camera axes."""
        joints, vertices = [], []
        for s in range(len(SIDES)):
            v, j = mano_forward(pose[:, s], betas[:, s], self.v_template[s], self.shapedirs[s], self.posedirs[s],
                                self.j_regressor[s], self.weights[s], self.parents)
            wrist = j[:, :1]
            joints.append(j - wrist)
            vertices.append(v - wrist)
        return torch.stack(joints, 1), torch.stack(vertices, 1)


