"""Grasp signals per hand for teleoperation: pinch distance, grasp strength in [0, 1], open/pinch/fist state.

- pinch distance: thumb tip (4) to index tip (8), metres;
- grasp strength: mean over the four fingers of their total flexion (the bend at MCP, PIP and DIP, from the
  wrist->MCP direction on), divided by FIST_FLEXION_RAD and clipped to [0, 1]: 0 flat hand, 1 fist;
- state with hysteresis, per track: FIST while strength >= FIST_ENTER (left below FIST_EXIT); else PINCH while
  pinch distance / palm length <= PINCH_ENTER_RATIO (left above PINCH_EXIT_RATIO); else OPEN. The pinch
  thresholds are relative to the hand's own palm length (wrist to middle MCP), so they hold for any hand size
  and are untouched by a monocular scale error.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from hand_recon_ros.pipeline.types import FrameResult

THUMB_TIP, INDEX_TIP, WRIST, MIDDLE_MCP = 4, 8, 0, 9
# Finger chains (MCP, PIP, DIP, tip), index .. pinky.
FINGER_CHAINS: tuple[tuple[int, int, int, int], ...] = ((5, 6, 7, 8), (9, 10, 11, 12), (13, 14, 15, 16),
                                                        (17, 18, 19, 20))
# Total MCP + PIP + DIP flexion of a finger in a firm fist (radians): ~80 + 100 + 60 degrees.
FIST_FLEXION_RAD = 4.2
FIST_ENTER = 0.7
FIST_EXIT = 0.55
PINCH_ENTER_RATIO = 0.3  # thumb-index tip distance / palm length (about 2.7 cm on an adult hand)
PINCH_EXIT_RATIO = 0.45


class GraspState(enum.IntEnum):
    """Hand.msg GRASP_OPEN / GRASP_PINCH / GRASP_FIST."""

    OPEN = 0
    PINCH = 1
    FIST = 2


@dataclass(frozen=True)
class GraspSignals:
    """One hand's grasp signals (see the module docstring)."""

    pinch_distance_m: float
    grasp_strength: float
    state: GraspState


def _angles(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Angles (radians) between matching rows of u and v (..., 3)."""
    cos = np.einsum("...i,...i->...", u, v) / np.maximum(np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1),
                                                          1e-12)
    return np.arccos(np.clip(cos, -1.0, 1.0))


_CHAIN_INDEX = np.array(FINGER_CHAINS)


def grasp_strengths(joints: np.ndarray) -> np.ndarray:
    """Grasp strength in [0, 1] of each hand of joints (H, 21, 3): mean finger flexion over FIST_FLEXION_RAD. All
    hands in one set of numpy calls (a hand at a time cost ~80 us of small-array overhead per hand)."""
    joints = np.asarray(joints, dtype=np.float64)
    chains = joints[:, _CHAIN_INDEX]  # (H, 4, 4, 3)
    bones = np.concatenate([(chains[:, :, 0] - joints[:, None, WRIST])[:, :, None], np.diff(chains, axis=2)],
                           axis=2)  # (H, 4, 4, 3)
    flexion = _angles(bones[:, :, :-1], bones[:, :, 1:]).sum(axis=2)  # (H, 4)
    return np.clip(flexion.mean(axis=1) / FIST_FLEXION_RAD, 0.0, 1.0)


def grasp_strength(joints: np.ndarray) -> float:
    """Grasp strength in [0, 1] of joints (21, 3): mean finger flexion over FIST_FLEXION_RAD."""
    return float(grasp_strengths(np.asarray(joints, dtype=np.float64)[None])[0])


def next_state(previous: GraspState, strength: float, pinch_ratio: float) -> GraspState:
    """The grasp state after ``previous`` given this frame's strength and pinch distance / palm length."""
    fist = strength >= (FIST_EXIT if previous is GraspState.FIST else FIST_ENTER)
    if fist:
        return GraspState.FIST
    pinch = pinch_ratio <= (PINCH_EXIT_RATIO if previous is GraspState.PINCH else PINCH_ENTER_RATIO)
    return GraspState.PINCH if pinch else GraspState.OPEN


class GraspTracker:
    """Computes GraspSignals for every hand with 3D joints, keeping each track's state for the hysteresis."""

    def __init__(self) -> None:
        self._states: dict[tuple[int, str], GraspState] = {}

    def reset(self) -> None:
        """Forget every track's state."""
        self._states.clear()

    def apply(self, result: FrameResult) -> FrameResult:
        """Set ``hand.grasp`` on every hand of ``result`` that has finite 3D joints (in place; returned)."""
        hands = [hand for hand in result.hands if hand.joints_3d is not None]
        states: dict[tuple[int, str], GraspState] = {}
        if not hands:
            self._states = states
            return result
        joints = np.asarray([hand.joints_3d for hand in hands], dtype=np.float64).reshape(len(hands), -1, 3)
        finite = np.isfinite(joints).all(axis=(1, 2))
        pinch = np.linalg.norm(joints[:, THUMB_TIP] - joints[:, INDEX_TIP], axis=-1).tolist()
        palm = np.linalg.norm(joints[:, MIDDLE_MCP] - joints[:, WRIST], axis=-1).tolist()
        strength = grasp_strengths(joints).tolist()
        for i, hand in enumerate(hands):
            if not finite[i]:
                continue
            key = (int(hand.detection.track_id), hand.side)
            state = next_state(self._states.get(key, GraspState.OPEN), strength[i], pinch[i] / max(palm[i], 1e-6))
            states[key] = state
            hand.grasp = GraspSignals(pinch[i], strength[i], state)
        self._states = states
        return result
