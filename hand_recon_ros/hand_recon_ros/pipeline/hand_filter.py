"""One-Euro filtering of each tracked hand's 3D joints and wrist pose (after the pipeline, before publishing).

One filter state per track id: a new track starts unfiltered, a track that disappears is forgotten. The wrist
quaternion is filtered component-wise after flipping it onto the previous output's hemisphere (q and -q are the
same rotation) and re-normalised, which is accurate for the small per-frame rotations a hand makes.
It sits beside the refinement's ``smoothing`` (a temporal prior inside the 3D fit): see docs/teleop.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hand_recon_ros.pipeline.one_euro_filter import OneEuroFilter, OneEuroSettings
from hand_recon_ros.pipeline.types import FrameResult, HandResult


@dataclass
class _TrackFilters:
    joints: OneEuroFilter
    wrist: OneEuroFilter
    quaternion: OneEuroFilter
    last_quaternion: np.ndarray | None = field(default=None)


class HandOutputFilter:
    """Filters FrameResult hands in place, per track id, with one OneEuroSettings for joints and wrist pose."""

    def __init__(self, settings: OneEuroSettings) -> None:
        self.settings = settings
        self._tracks: dict[tuple[int, str], _TrackFilters] = {}

    def update(self, settings: OneEuroSettings) -> None:
        """New parameters (live change): histories restart so no sample mixes old and new settings."""
        self.settings = settings
        self._tracks.clear()

    def reset(self) -> None:
        """Forget every track's history (time went back, new video)."""
        self._tracks.clear()

    def _filters(self, key: tuple[int, str]) -> _TrackFilters:
        filters = self._tracks.get(key)
        if filters is None:
            filters = _TrackFilters(*(OneEuroFilter(self.settings) for _ in range(3)))
            self._tracks[key] = filters
        return filters

    def _filter_hand(self, hand: HandResult, filters: _TrackFilters, t_s: float) -> None:
        if hand.joints_3d is not None:
            hand.joints_3d = filters.joints.filter(hand.joints_3d, t_s).astype(np.float32)
        if hand.wrist_position is not None:
            hand.wrist_position = filters.wrist.filter(hand.wrist_position, t_s).astype(np.float32)
        if hand.wrist_quaternion is not None:
            q = np.asarray(hand.wrist_quaternion, dtype=np.float64)
            if filters.last_quaternion is not None and np.dot(q, filters.last_quaternion) < 0.0:
                q = -q
            q = filters.quaternion.filter(q, t_s)
            norm = np.linalg.norm(q)
            if np.isfinite(norm) and norm > 1e-9:
                q = q / norm
                filters.last_quaternion = q
            hand.wrist_quaternion = q.astype(np.float32)

    def apply(self, result: FrameResult, t_s: float) -> FrameResult:
        """Filter every hand of ``result`` (in place; returned for chaining) at image time ``t_s`` seconds."""
        if not self.settings.enabled:
            return result
        seen: set[tuple[int, str]] = set()
        for hand in result.hands:
            key = (int(hand.detection.track_id), hand.side)
            seen.add(key)
            self._filter_hand(hand, self._filters(key), t_s)
        for key in set(self._tracks) - seen:
            del self._tracks[key]
        return result
