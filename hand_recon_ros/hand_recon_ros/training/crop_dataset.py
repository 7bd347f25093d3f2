"""``HandCropDataset``: TrainRecords → network inputs and targets at the network's input size (side 0 = left).

Items are dicts of tensors: ``image`` (3, S, S) RGB in [0, 1]; ``keypoints_2d`` (2, 21, 2) input pixels;
``keypoints_conf`` (2, 21); ``joints_3d`` (2, 21, 3) wrist-relative metres, camera axes; ``joints_3d_valid``
(2, 21); ``prior_joints`` (2, 21, 3) and ``prior_valid`` (2,): the default pipeline's wrist-relative joints
(residual mode; zeros where a record has none); ``present`` (2,); ``centers`` (2, 2) input pixels (centre of
each hand's 2D box); ``root_offset`` (3,) right wrist minus left wrist and ``root_offset_valid`` ().
The augmentation of item ``i`` in epoch ``e`` is drawn from a generator seeded with (seed, e, i), so
runs are reproducible across resume and process counts.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from hand_recon_ros.skeleton import NUM_JOINTS, SIDES
from hand_recon_ros.training import augment as aug
from hand_recon_ros.training.config import DataConfig
from hand_recon_ros.training.records import TrainRecord


class HandCropDataset(Dataset):
    """Crops of the labelled hands, augmented when ``train`` is True."""

    def __init__(self, records: list[TrainRecord], input_size: int, data: DataConfig, seed: int = 0,
                 train: bool = True) -> None:
        """Keep the records; nothing is loaded until an item is asked for."""
        self.records, self.input_size, self.data, self.seed, self.train = records, input_size, data, seed, train

    def __len__(self) -> int:
        """Number of records."""
        return len(self.records)

    def params_for(self, index: int, epoch: int) -> aug.AugmentParams:
        """The augmentation of ``index`` in ``epoch`` (identity when not training or augmentation is off)."""
        if not (self.train and self.data.augment):
            return aug.AugmentParams()
        rng = np.random.default_rng([self.seed, epoch, index])
        d = self.data
        return aug.draw_params(rng, (d.scale_range[0], d.scale_range[1]), d.rotation_deg, d.translation_fraction,
                               d.colour_jitter, d.flip_probability)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        """Item ``key`` (an index, or (index, epoch) from the trainer's batch sampler)."""
        index, epoch = (key, 0) if isinstance(key, (int, np.integer)) else key
        record = self.records[int(index)]
        params = self.params_for(int(index), int(epoch))
        return make_item(record, self.input_size, self.data.crop_margin, params, self.data.min_joint_confidence)


def make_item(record: TrainRecord, size: int, margin: float, params: aug.AugmentParams,
              min_confidence: float = 0.0) -> dict[str, torch.Tensor]:
    """Network input and targets of one record under one augmentation."""
    image = record.load_image()
    hands = record.hands
    center, crop = aug.crop_box([h.keypoints_2d[h.confidence > 0] if (h.confidence > 0).any() else h.keypoints_2d
                                 for h in hands] or [np.array([[image.shape[1] / 2, image.shape[0] / 2]])], margin)
    matrix = aug.crop_matrix(center, crop, size, params)
    pixels = aug.warp_image(image, matrix, size).astype(np.float32) / 255.0
    pixels = aug.jitter_colour(pixels, params) if params != aug.AugmentParams() else pixels
    keypoints = np.zeros((2, NUM_JOINTS, 2), np.float32)
    conf = np.zeros((2, NUM_JOINTS), np.float32)
    joints = np.zeros((2, NUM_JOINTS, 3), np.float32)
    joints_valid = np.zeros((2, NUM_JOINTS), np.float32)
    present = np.zeros(2, np.float32)
    prior = np.zeros((2, NUM_JOINTS, 3), np.float32)
    prior_valid = np.zeros(2, np.float32)
    centers = np.full((2, 2), (size - 1) / 2.0, np.float32)
    wrists: dict[int, np.ndarray] = {}
    for hand in hands:
        side = hand.side
        if params.flip:
            side = "left" if side == "right" else "right"
        s = SIDES.index(side)
        kp = aug.warp_points(hand.keypoints_2d, matrix)
        c = np.where(hand.confidence >= min_confidence, hand.confidence, 0.0)
        keypoints[s], conf[s], present[s] = kp, c, 1.0
        seen = kp[c > 0] if (c > 0).any() else kp
        centers[s] = (seen.min(0) + seen.max(0)) / 2.0
        if hand.prior_joints is not None:
            rotated = aug.rotate_joints(hand.prior_joints, params)
            prior[s], prior_valid[s] = rotated - rotated[0], 1.0
        if hand.joints_3d is not None:
            cam = aug.rotate_joints(hand.joints_3d, params)
            valid = hand.joints_valid if hand.joints_valid is not None else np.ones(NUM_JOINTS, bool)
            if valid[0]:
                joints[s] = cam - cam[0]
                joints_valid[s] = valid
                wrists[s] = cam[0]
    root_valid = float(0 in wrists and 1 in wrists)
    root = (wrists[1] - wrists[0]) if root_valid else np.zeros(3)
    return {
        "image": torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1), dtype=np.float32)),
        "keypoints_2d": torch.from_numpy(keypoints), "keypoints_conf": torch.from_numpy(conf),
        "joints_3d": torch.from_numpy(joints), "joints_3d_valid": torch.from_numpy(joints_valid),
        "present": torch.from_numpy(present), "centers": torch.from_numpy(centers),
        "prior_joints": torch.from_numpy(prior), "prior_valid": torch.from_numpy(prior_valid),
        "root_offset": torch.from_numpy(root.astype(np.float32)),
        "root_offset_valid": torch.tensor(root_valid, dtype=torch.float32),
    }
