"""Compiled (numba) pre/post-processing of the palm and landmark networks: one call instead of dozens of small
numpy calls, which cost more than their arithmetic when they run right after a network (cold CPU caches).

Each kernel reproduces a numpy block that stays the reference (and the path without numba): the landmark
back-projection of ``landmark_estimator.LandmarkEstimator.estimate`` and the palm decode, weighted NMS and
un-letterbox of ``palm_decode``. They share the solver kernels' switch (``solver_kernels.enabled``), on-disk cache
and ``warm()`` (run by ``make setup``).
"""

from __future__ import annotations

import math

import numpy as np

from hand_recon_ros.pipeline.solver_kernels import _jit


@_jit
def landmarks_to_image(raw: np.ndarray, world: np.ndarray, rois: np.ndarray, size_px: float, normalize_z: float
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Keypoints (N, 21, 2) image pixels, relative depth (N, 21) pixels and world landmarks in image axes
    (N, 21, 3), all float32, from the network's raw (N, 21, 3) and world (N, 21, 3) float32 outputs for ROIs
    (N, 5) = cx, cy, width, height, rotation (roi.crop_to_image_matrix, LandmarkEstimator.estimate)."""
    n = raw.shape[0]
    keypoints = np.empty((n, 21, 2), np.float32)
    z_px = np.empty((n, 21), np.float32)
    world_image = np.empty((n, 21, 3), np.float32)
    nz = np.float32(normalize_z)
    for h in range(n):
        cos_r, sin_r = math.cos(rois[h, 4]), math.sin(rois[h, 4])
        sx, sy = rois[h, 2] / size_px, rois[h, 3] / size_px
        a00, a01, a10, a11 = cos_r * sx, -sin_r * sy, sin_r * sx, cos_r * sy
        o0 = rois[h, 0] - (a00 * (size_px / 2.0) + a01 * (size_px / 2.0))
        o1 = rois[h, 1] - (a10 * (size_px / 2.0) + a11 * (size_px / 2.0))
        sx32 = np.float32(sx)
        c32, s32 = np.float32(cos_r), np.float32(sin_r)
        for k in range(21):
            u, v = np.float64(raw[h, k, 0]), np.float64(raw[h, k, 1])
            keypoints[h, k, 0] = np.float32(a00 * u + a01 * v + o0)
            keypoints[h, k, 1] = np.float32(a10 * u + a11 * v + o1)
            z_px[h, k] = raw[h, k, 2] / nz * sx32
            w0, w1 = world[h, k, 0], world[h, k, 1]
            world_image[h, k, 0] = w0 * c32 - w1 * s32
            world_image[h, k, 1] = w0 * s32 + w1 * c32
            world_image[h, k, 2] = world[h, k, 2]
    return keypoints, z_px, world_image



@_jit
def palm_detections(raw_boxes: np.ndarray, raw_logits: np.ndarray, anchors: np.ndarray, min_score: float,
                    logit_threshold: float, preselect: bool, size_px: int, iou_threshold: float, max_count: int,
                    scale: float, pad_x: float, pad_y: float
                    ) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Palms (M, 18) in image pixel-index coordinates (box centre, size, 7 keypoints) and their scores (M,), best
    first: palm_decode.decode_palms, weighted_nms and unletterbox in one pass, in the same float32 arithmetic.

    raw_boxes (N, 18) and raw_logits (N,) float32; anchors (N, 2) float32; logits below logit_threshold are
    skipped when preselect; max_count < 0: no limit.
    """
    n = raw_logits.shape[0]
    one, size32, clip = np.float32(1.0), np.float32(size_px), np.float32(100.0)
    keep = np.empty(n, np.int64)
    scores = np.empty(n, np.float32)
    min32 = np.float32(min_score)  # numpy compares float32 scores with the threshold rounded to float32
    count = 0
    for i in range(n):
        logit = raw_logits[i]
        if preselect and not logit >= np.float32(logit_threshold):
            continue
        score = one / (one + np.exp(-min(max(logit, -clip), clip)))
        if score >= min32:
            keep[count], scores[count] = i, score
            count += 1
    boxes = np.empty((count, 18), np.float32)
    for j in range(count):
        i = keep[j]
        for c in range(18):
            boxes[j, c] = raw_boxes[i, c] / size32
        boxes[j, 0] += anchors[i, 0]
        boxes[j, 1] += anchors[i, 1]
        for p in range(7):
            boxes[j, 4 + 2 * p] += anchors[i, 0]
            boxes[j, 5 + 2 * p] += anchors[i, 1]
    order = np.argsort(-scores[:count], kind="mergesort")  # stable, as weighted_nms
    sb = np.empty((count, 18), np.float32)
    ss = np.empty(count, np.float32)
    for j in range(count):
        sb[j] = boxes[order[j]]
        ss[j] = scores[order[j]]
    two, eps, thr = np.float32(2.0), np.float32(1e-12), np.float32(iou_threshold)
    free = np.ones(count, np.bool_)
    out = np.empty((count, 18), np.float32)
    out_scores = np.empty(count, np.float32)
    kept = 0
    cluster = np.empty(count, np.bool_)
    for best in range(count):
        if max_count >= 0 and kept >= max_count:
            break
        if not free[best]:
            continue
        bx0, by0 = sb[best, 0] - sb[best, 2] / two, sb[best, 1] - sb[best, 3] / two
        bx1, by1 = sb[best, 0] + sb[best, 2] / two, sb[best, 1] + sb[best, 3] / two
        area_b = sb[best, 2] * sb[best, 3]
        for j in range(count):
            cluster[j] = False
            if not free[j]:
                continue
            ix = min(bx1, sb[j, 0] + sb[j, 2] / two) - max(bx0, sb[j, 0] - sb[j, 2] / two)
            iy = min(by1, sb[j, 1] + sb[j, 3] / two) - max(by0, sb[j, 1] - sb[j, 3] / two)
            inter = max(ix, np.float32(0.0)) * max(iy, np.float32(0.0))
            union = area_b + sb[j, 2] * sb[j, 3] - inter
            iou = inter / max(union, eps) if union > 0 else np.float32(0.0)
            cluster[j] = iou > thr
        cluster[best] = True
        total = np.float32(0.0)
        for j in range(count):
            if cluster[j]:
                total += ss[j]
        for c in range(18):
            acc = np.float32(0.0)
            for j in range(count):
                if cluster[j]:
                    acc += sb[j, c] * ss[j]
            out[kept, c] = acc / total
        out_scores[kept] = ss[best]
        kept += 1
        for j in range(count):
            if cluster[j]:
                free[j] = False
    result = np.empty((kept, 18), np.float32)
    for m in range(kept):  # un-letterbox: network input → image pixel-index coordinates (float64, then float32)
        for p in range(9):
            x = np.float64(out[m, 2 * p] * size32)
            y = np.float64(out[m, 2 * p + 1] * size32)
            if p == 1:
                result[m, 2], result[m, 3] = np.float32(out[m, 2] * size32 / np.float32(scale)), np.float32(
                    out[m, 3] * size32 / np.float32(scale))
            else:
                result[m, 2 * p] = np.float32((x - pad_x) / scale - 0.5)
                result[m, 2 * p + 1] = np.float32((y - pad_y) / scale - 0.5)
    return result, out_scores[:kept].copy()


def warm() -> None:
    """Compile (or load from the on-disk cache) every kernel here on tiny inputs (solver_kernels.warm calls it)."""
    raw = np.zeros((2, 21, 3), np.float32)
    landmarks_to_image(raw, raw, np.ones((2, 5)), 224.0, 0.4)
    palm_detections(np.zeros((4, 18), np.float32), np.zeros(4, np.float32), np.zeros((4, 2), np.float32), 0.5,
                    -0.001, True, 192, 0.3, -1, 1.0, 0.0, 0.0)
