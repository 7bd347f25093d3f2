"""SSD anchors of MediaPipe's palm detector (its graph options, reproduced exactly): 2016 anchors for 192x192."""

from __future__ import annotations

import numpy as np

PALM_INPUT_SIZE_PX = 192
ANCHOR_NUM_LAYERS = 4
ANCHOR_STRIDES: tuple[int, ...] = (8, 16, 16, 16)
ANCHOR_OFFSET = 0.5
ANCHORS_PER_LAYER = 2  # aspect ratio 1.0 + the interpolated-scale anchor; fixed anchor size makes both 1x1


def generate_anchors(input_size_px: int = PALM_INPUT_SIZE_PX, strides: tuple[int, ...] = ANCHOR_STRIDES) -> np.ndarray:
    """Anchor centres (N, 2) float32, normalised to [0, 1], in the order the network emits its boxes.

    Consecutive layers with the same stride share one grid (MediaPipe's SsdAnchorsCalculator), so strides
    8,16,16,16 give 24x24x2 + 12x12x6 = 2016 anchors; with a fixed anchor size every width/height is 1.
    """
    if input_size_px <= 0 or not strides:
        raise ValueError(f"need a positive input size and at least one stride, got {input_size_px}, {strides}")
    centres: list[np.ndarray] = []
    layer = 0
    while layer < len(strides):
        stride = strides[layer]
        per_cell = 0
        while layer < len(strides) and strides[layer] == stride:
            per_cell += ANCHORS_PER_LAYER
            layer += 1
        grid = int(np.ceil(input_size_px / stride))
        coords = (np.arange(grid, dtype=np.float32) + ANCHOR_OFFSET) / grid
        yy, xx = np.meshgrid(coords, coords, indexing="ij")  # row-major: y outer, x inner
        cell = np.stack([xx.ravel(), yy.ravel()], axis=1)
        centres.append(np.repeat(cell, per_cell, axis=0))
    return np.concatenate(centres, axis=0).astype(np.float32)
