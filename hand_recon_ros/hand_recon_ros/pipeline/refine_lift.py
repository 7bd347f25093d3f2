"""RefinementLifter: the pipeline's metric-3D stage (both hands refined jointly; meshes on request).

Per frame: undistort the keypoints, build one observation per hand (keypoints, confidence, world landmarks,
the track's bone lengths, the track's previous joints in video mode), run ``refinement.refine`` on all hands in
one batch, then fill HandResult (joints, per-joint confidence, wrist pose, fit residual, mesh, MANO parameters).
Per tracked hand (track_id) the bone lengths converge to the mean proportions of its first world landmarks,
and a hand whose keypoints did not move since its last solve keeps that fit (a still hand stays still).
A fit with non-finite joints is reported (``warnings``), that hand gets no 3D and its track starts cold.
With a registered depth image (``lift(depth_m=...)``) each hand's joints get depths (pipeline/depth_fusion.py)
that enter the solver as a depth term; the hand's size is measured against a monocular solve of the same frame
(see ``_measure_size``): per frame in image mode, the median of its measurements per track in video mode.
``hand_length_m`` (config) scales the adult bone prior for a user who measured their hand; such a given size is
authoritative: with depth the hands are still placed by depth, but their size is not measured.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hand_recon_ros.models import hand_kinematics as hk
from hand_recon_ros.pipeline import refinement, solver_kernels
from hand_recon_ros.pipeline.camera import undistort_keypoints
from hand_recon_ros.pipeline.depth_fusion import joint_depths
from hand_recon_ros.pipeline.types import CameraIntrinsics, HandDetection, HandMesh, HandResult
from hand_recon_ros.pipeline.wrist_pose import MIN_AXIS_LENGTH_M, wrist_poses
from hand_recon_ros.skeleton import NUM_JOINTS, WRIST

log = logging.getLogger(__name__)

# A joint whose reprojection error reaches this fraction of the hand's ROI size keeps exp(-1) of the score.
CONFIDENCE_RESIDUAL_FRACTION = 0.05
# Tracks unseen for longer than this lose their temporal state (seconds; image stamps, or the host's monotonic
# clock while stamps do not advance: constant or zero stamps).
TRACK_TIMEOUT_S = 1.0
# A track's bone lengths move from the prior towards the running mean of the proportions of its first this many
# frames, then stay fixed: the adaptation converges instead of creeping (a creeping hand scale moves it in depth).
BONE_LENGTH_FRAMES = 8
# How far they move: the world landmarks' proportions are noisy (a few mm per bone), so only part of the way.
BONE_ADAPT_WEIGHT = 0.5
# Keypoints that moved less than this (every joint, pixels) since the track's last solve keep that fit: the warm
# started solver, one iteration a frame, would otherwise keep walking along its ill-conditioned depth valley.
STILL_KEYPOINT_PX = 0.5
# Joint motion between frames allowed by the smoothness term at smoothing = 1 and at 0 (metres per frame).
TEMPORAL_SIGMA_MIN_M = 0.002
TEMPORAL_SIGMA_MAX_M = 0.03
# Hand size from depth: a track's size is the median of its measured sizes (log scale) over its last
# SIZE_WINDOW measurements (a hand's size does not change, and single frames can be far off: a finger in front of
# the wrist, a bad monocular fit), within this range relative to the adult prior (children to large adults).
SIZE_WINDOW = 60
SIZE_SCALE_RANGE = (0.6, 1.5)
# A track measures its size (one extra monocular solve) on each of its first SIZE_CONVERGE_FRAMES depth frames
# (about 2 s at 30 Hz), then on every SIZE_REFRESH_FRAMES-th.
SIZE_CONVERGE_FRAMES = 60
SIZE_REFRESH_FRAMES = 10
# A depth reading this much nearer than the fitted joint sees something in front of it (a finger is ~16-20 mm
# thick), metres; used by the size measurement.
OCCLUDER_M = 0.02
# Error of a joint's depth relative to the wrist's from the depth camera (two joint depths of ~4 mm each, plus
# the offsets' variation), metres: the size solve's weight for it (the network's relative depth: 30 mm).
SENSOR_RELATIVE_DEPTH_SIGMA_M = 0.008
MIDDLE_CHAIN_BONES = [8, 9, 10, 11]  # wrist→middle MCP→PIP→DIP→tip: the hand length (wrist to middle fingertip)
PLACEMENT_MONOCULAR, PLACEMENT_DEPTH = "monocular", "depth"


def hand_length_of(bone_lengths: np.ndarray) -> float:
    """Hand length (wrist to middle fingertip, metres) of a set of bone lengths (20,): the adult prior's, scaled by
    the total bone length (the hand's size; its proportions, adapted per track, do not change it)."""
    prior = hk.BONE_LENGTH_PRIOR_M
    return float(prior[MIDDLE_CHAIN_BONES].sum() * np.sum(bone_lengths) / prior.sum())


def bone_prior(hand_length_m: float = 0.0) -> np.ndarray:
    """Bone lengths (20,) of the adult prior scaled to ``hand_length_m`` (0: the adult prior itself)."""
    if hand_length_m < 0 or not np.isfinite(hand_length_m):
        raise ValueError(f"hand_length_m must be >= 0 (0 = adult prior), got {hand_length_m!r}")
    if hand_length_m == 0:
        return hk.BONE_LENGTH_PRIOR_M.copy()
    return hk.BONE_LENGTH_PRIOR_M * (hand_length_m / hand_length_of(hk.BONE_LENGTH_PRIOR_M))


class DetectionError(ValueError):
    """A HandDetection with arrays of the wrong shape; the message names the hand and the field."""


@dataclass
class _Track:
    bone_lengths: np.ndarray = field(default_factory=lambda: hk.BONE_LENGTH_PRIOR_M.copy())
    joints: np.ndarray | None = None
    fit: refinement.HandFit | None = None  # the previous frame's fit: the next solve starts from it
    keypoints_px: np.ndarray | None = None  # the undistorted keypoints ``fit`` was solved from
    bone_frames: int = 0  # frames averaged into observed_bones so far (at most BONE_LENGTH_FRAMES)
    observed_bones: np.ndarray = field(default_factory=lambda: hk.BONE_LENGTH_PRIOR_M.copy())  # their mean
    timestamp_s: float | None = None
    seen_s: float = 0.0  # host monotonic time of the last frame that had this track
    size_scale: float = 1.0  # measured size relative to the bone lengths (with depth), 1 until measured
    size_frames: int = 0  # frames of this track placed by depth
    size_log: list[float] = field(default_factory=list)  # its last SIZE_WINDOW measured log sizes (vs the prior)


def _finite_fit(fit: refinement.HandFit) -> bool:
    """True when every array of the fit that the next frame or the result uses is finite (their sum is: a NaN or
    inf anywhere makes it non-finite; one sum per array is cheaper than an isfinite pass each)."""
    total = (float(np.sum(fit.joints)) + float(np.sum(fit.rotation)) + float(np.sum(fit.translation))
             + float(np.sum(fit.angles)) + float(np.sum(fit.residual_px)))
    return math.isfinite(total)


def _wrist_poses(joints: list[np.ndarray], sides: list[str]) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """wrist_pose.wrist_poses of the refined hands, in one compiled call when the solver kernels are on."""
    if not joints or not solver_kernels.enabled():
        return wrist_poses(joints, sides)
    quats, defined = solver_kernels.wrist_quaternions(np.stack(joints), np.array([s == "right" for s in sides]),
                                                      MIN_AXIS_LENGTH_M)
    return [(j[WRIST].copy(), q if ok else None) for j, q, ok in zip(joints, quats, defined)]


def _check_detection(index: int, det: HandDetection) -> None:
    """Raise DetectionError naming the first array of ``det`` with the wrong shape."""
    for name, shape in (("keypoints_2d", (NUM_JOINTS, 2)), ("keypoints_z", (NUM_JOINTS,)),
                        ("world_landmarks", (NUM_JOINTS, 3))):
        value = np.asarray(getattr(det, name))
        if value.shape != shape:
            raise DetectionError(f"detection {index} ({det.side}): {name} must have shape {shape}, got {value.shape}")
    if det.side not in ("left", "right"):
        raise DetectionError(f"detection {index}: side must be 'left' or 'right', got {det.side!r}")


def observed_bone_lengths(world_landmarks: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Bone lengths (20,) with the world landmarks' proportions at the reference's total size, clamped."""
    observed = hk.bone_lengths_of(world_landmarks)
    scaled = observed * reference.sum() / max(float(observed.sum()), 1e-9)
    low, high = hk.BONE_SCALE_RANGE
    return np.clip(scaled, reference * low, reference * high)  # about the reference: a user-sized prior too


def _relative_depth(det: HandDetection) -> np.ndarray | None:
    """The detection's wrist-relative depth in pixels when finite and non-trivial, else None (no depth prior)."""
    z = np.asarray(det.keypoints_z, dtype=np.float64)
    magnitude = float(np.abs(z).sum())  # finite and > 0 exactly when every value is finite and one is non-zero
    return z if math.isfinite(magnitude) and magnitude > 0.0 else None


def _sensor_relative_depth(network: np.ndarray | None, depth_m: np.ndarray, fx: float) -> np.ndarray | None:
    """Relative depth in the solver's units (f · (z_j − z_wrist) / z_wrist, pixels) from joint depths where the
    wrist and the joint have one, the network's elsewhere (zero where neither); unchanged without a wrist depth."""
    if not np.isfinite(depth_m[0]):
        return network
    sensor = fx * (depth_m / depth_m[0] - 1.0)
    fallback = np.zeros(NUM_JOINTS) if network is None else np.asarray(network, dtype=np.float64)
    return np.where(np.isfinite(sensor), sensor, fallback)


def _follow_depth(obs: refinement.HandObservation, temporal_sigma_m: float | None) -> refinement.HandObservation:
    """A tracked hand whose joint depths moved further from its previous fit than the temporal prior allows in
    one frame: its previous joints and warm start moved along their rays by that change first, so the prior keeps
    the hand's shape and motion continuity but does not hold it at the old depth (the depth camera saw it move;
    an unchanged image with a depth jump otherwise took ~5 frames to follow)."""
    if obs.previous is None or obs.depth_m is None:
        return obs
    previous = np.asarray(obs.previous, dtype=np.float64)
    known = np.isfinite(obs.depth_m)
    shift = float(np.median(obs.depth_m[known] - previous[known, 2]))
    if abs(shift) <= (temporal_sigma_m or TEMPORAL_SIGMA_MAX_M):
        return obs
    centre = float(np.median(previous[:, 2]))
    factor = max(centre + shift, refinement.MIN_DEPTH_M) / max(centre, refinement.MIN_DEPTH_M)
    warm = obs.warm_start
    if warm is not None:
        warm = dataclasses.replace(warm, translation=np.asarray(warm.translation) * factor,
                                   joints=np.asarray(warm.joints) * factor)
    return dataclasses.replace(obs, previous=previous * factor, warm_start=warm)


def _depth_ratio(fit: refinement.HandFit, depth_m: np.ndarray) -> float:
    """Median of measured over fitted joint depth, over the joints with a depth."""
    valid = np.isfinite(depth_m)
    return float(np.median(depth_m[valid] / np.maximum(fit.joints[valid, 2], refinement.MIN_DEPTH_M)))


class RefinementLifter:
    """Metric 3D for all hands of a frame by decoupled 2D ⇄ 3D refinement (see pipeline/refinement.py)."""

    def __init__(self, config: Any = None) -> None:
        """Read smoothing, mode, mano_dir from a PipelineConfig (missing fields fall back to defaults)."""
        self.smoothing = float(getattr(config, "smoothing", 0.5))
        self.mode = str(getattr(config, "mode", "video"))
        self.mano_dir = getattr(config, "mano_dir", None)
        self.iterations = int(getattr(config, "refine_iterations", refinement.RefineSettings.iterations))
        self.warm_iterations = int(getattr(config, "refine_warm_iterations",
                                           refinement.RefineSettings.warm_iterations))
        self.warm_start = bool(getattr(config, "warm_start", True))
        self.prior = bone_prior(float(getattr(config, "hand_length_m", 0.0) or 0.0))
        # A size the user gave is authoritative: depth still places the hand, but its size is never measured.
        self.measure_size = not float(getattr(config, "hand_length_m", 0.0) or 0.0) > 0.0
        self._tracks: dict[int, _Track] = {}
        self._clock = time.monotonic  # stale-track fallback when image stamps do not advance
        self.warnings: list[str] = []  # problems of the last lift (non-finite fits), for logs and diagnostics
        self.failed_fits = 0  # non-finite fits since start
        self._mano: dict[str, Any] = {}
        self._mano_checked = False

    def update(self, **changes: Any) -> None:
        """Apply live setting changes (smoothing, mode)."""
        if "smoothing" in changes:
            self.smoothing = float(changes["smoothing"])
        if "mode" in changes and changes["mode"] != self.mode:
            self.mode = str(changes["mode"])
            self.reset()

    def reset(self) -> None:
        """Forget every track's bone lengths and previous pose."""
        self._tracks.clear()

    def _temporal_sigma(self) -> float | None:
        if self.mode != "video" or self.smoothing <= 0.0:
            return None
        return TEMPORAL_SIGMA_MAX_M + (TEMPORAL_SIGMA_MIN_M - TEMPORAL_SIGMA_MAX_M) * self.smoothing

    @staticmethod
    def _age_s(track: _Track, timestamp_s: float | None, now_s: float) -> float:
        """Time since the track was last seen: by image stamps when they advanced, else by the host clock."""
        if timestamp_s is not None and track.timestamp_s is not None and timestamp_s != track.timestamp_s:
            return abs(timestamp_s - track.timestamp_s)
        return now_s - track.seen_s

    def _track(self, det: HandDetection, timestamp_s: float | None, now_s: float) -> _Track | None:
        """The temporal state of ``det``'s track in video mode (created on first sight or when stale), else None."""
        if self.mode != "video" or det.track_id < 0:
            return None
        track = self._tracks.get(det.track_id)
        if track is None or self._age_s(track, timestamp_s, now_s) > TRACK_TIMEOUT_S:
            track = _Track(bone_lengths=self.prior.copy(), observed_bones=self.prior.copy())
            self._tracks[det.track_id] = track
        return track

    @staticmethod
    def _still(track: _Track | None, keypoints_px: np.ndarray) -> bool:
        """True when the track has a fit solved from keypoints within STILL_KEYPOINT_PX of these."""
        if track is None or track.fit is None or track.keypoints_px is None:
            return False
        return bool(np.max(np.abs(keypoints_px - track.keypoints_px)) < STILL_KEYPOINT_PX)

    def _adapt_bones(self, track: _Track, world_landmarks: np.ndarray) -> None:
        """Fold this frame's world-landmark proportions into the track's bone lengths (first frames only)."""
        if track.bone_frames >= BONE_LENGTH_FRAMES:
            return
        observed = observed_bone_lengths(world_landmarks, self.prior)
        track.bone_frames += 1
        track.observed_bones = track.observed_bones + (observed - track.observed_bones) / track.bone_frames
        prior = self.prior  # the adult prior, or scaled to the user's hand_length_m
        adapted = prior + BONE_ADAPT_WEIGHT * (track.observed_bones - prior)
        track.bone_lengths = adapted * (prior.sum() / adapted.sum())  # proportions only: clipping kept the size off

    def lift(self, detections: list[HandDetection], intrinsics: CameraIntrinsics, timestamp_s: float | None = None,
             want_mesh: bool = False, depth_m: np.ndarray | None = None) -> list[HandResult]:
        """One HandResult per detection (same order); joints_3d None for hands with non-finite input; ``depth_m``
        (H, W) metres registered to the image (checked by the caller) places hands by depth where it can."""
        for i, det in enumerate(detections):
            _check_detection(i, det)
        now_s = self._clock()
        self.warnings = []
        usable = [i for i, d in enumerate(detections)  # a sum is finite only when every value is
                  if math.isfinite(float(np.sum(d.keypoints_2d)) + float(np.sum(d.world_landmarks)))]
        tracks = {i: self._track(detections[i], timestamp_s, now_s) for i in usable}
        observations = []
        for i in usable:
            det, track = detections[i], tracks[i]
            observations.append(refinement.HandObservation(
                side=det.side,
                keypoints_px=undistort_keypoints(det.keypoints_2d, intrinsics),
                confidence=np.full(NUM_JOINTS, min(max(float(det.score), 0.05), 1.0)),
                world=np.asarray(det.world_landmarks, dtype=np.float64),
                # a track keeps the size it measured with depth, also on frames without depth
                bone_lengths=self.prior if track is None else track.bone_lengths * track.size_scale,
                previous=None if track is None else track.joints,
                warm_start=None if track is None or not self.warm_start else track.fit,
                keypoints_z=_relative_depth(det),
            ))
        # Every hand kept still: their last fits stand (solved together, so only all at once). Not with depth:
        # the depth term then holds the hands, and a change in depth under a still image must still be followed.
        still = (depth_m is None and bool(observations)
                 and all(self._still(tracks[i], o.keypoints_px) for i, o in zip(usable, observations)))
        if still:
            fits = [tracks[i].fit for i in usable]
        else:
            settings = refinement.RefineSettings(iterations=self.iterations, warm_iterations=self.warm_iterations,
                                                 temporal_sigma_m=self._temporal_sigma())
            if depth_m is not None and observations:
                observations = self._with_depth(observations, [detections[i] for i in usable],
                                                [tracks[i] for i in usable], depth_m, intrinsics)
            fits = refinement.refine(observations, intrinsics, settings) if observations else []
        results = [HandResult(d, None, np.zeros(NUM_JOINTS, np.float32)) for d in detections]
        good = [(i, fit, obs) for i, fit, obs in zip(usable, fits, observations) if _finite_fit(fit)]
        for i, fit in zip(usable, fits):
            if not _finite_fit(fit):
                self._drop_bad_fit(detections[i], tracks[i])
        poses = _wrist_poses([fit.joints for _, fit, _ in good], [obs.side for _, _, obs in good])
        for (i, fit, obs), pose in zip(good, poses):
            det = detections[i]
            results[i] = self._result(det, fit, obs, pose, want_mesh)
            track = tracks[i]
            if track is not None:
                track.timestamp_s, track.seen_s = timestamp_s, now_s
                if not still:
                    track.joints, track.fit, track.keypoints_px = fit.joints.copy(), fit, obs.keypoints_px
                    self._adapt_bones(track, det.world_landmarks)
        seen = {d.track_id for d in detections}
        for track_id in [t for t in self._tracks if t not in seen]:
            if self._age_s(self._tracks[track_id], timestamp_s, now_s) > TRACK_TIMEOUT_S:
                del self._tracks[track_id]
        return results

    def _drop_bad_fit(self, det: HandDetection, track: _Track | None) -> None:
        """A non-finite fit: no 3D for this hand, its track restarts cold next frame, and it is reported."""
        self.failed_fits += 1
        message = (f"3D fit of the {det.side} hand (track {det.track_id}) was not finite; "
                   "its 3D is dropped and its track starts cold")
        self.warnings.append(message)
        log.warning(message)
        if track is not None:
            self._tracks[det.track_id] = _Track(bone_lengths=self.prior.copy(), observed_bones=self.prior.copy())

    def _with_depth(self, observations: list[refinement.HandObservation], detections: list[HandDetection],
                    tracks: list[_Track | None], depth_m: np.ndarray, intrinsics: CameraIntrinsics
                    ) -> list[refinement.HandObservation]:
        """The observations with each hand's joint depths, sized by depth (hands without usable depth unchanged)."""
        depths = [joint_depths(depth_m, det.keypoints_2d) for det in detections]
        with_depth = [i for i, d in enumerate(depths) if d.count > 0]
        if not with_depth:
            return observations
        out = list(observations)
        scales = [1.0 if t is None else t.size_scale for t in tracks]  # already in the observations' bone lengths
        due = [i for i in with_depth if self.measure_size and (
            tracks[i] is None or tracks[i].size_frames < SIZE_CONVERGE_FRAMES
            or tracks[i].size_frames % SIZE_REFRESH_FRAMES == 0)]
        measured = dict(zip(due, self._measure_size([observations[i] for i in due], [depths[i].z_m for i in due],
                                                    intrinsics))) if due else {}
        low, high = SIZE_SCALE_RANGE
        for i in with_depth:
            track = tracks[i]
            base = observations[i].bone_lengths / scales[i]
            if track is None:  # image mode: this frame's measurement sizes the hand
                scale = scales[i] * measured.get(i, 1.0)
            else:
                track.size_frames += 1
                if i in measured:
                    track.size_log.append(float(np.log(scales[i] * measured[i])))
                    del track.size_log[:-SIZE_WINDOW]
                scale = float(np.exp(np.median(track.size_log))) if track.size_log else scales[i]
            reference = hand_length_of(hk.BONE_LENGTH_PRIOR_M) / hand_length_of(base)
            scale = float(np.clip(scale, low * reference, high * reference))
            if track is not None:
                track.size_scale = scale
            out[i] = _follow_depth(dataclasses.replace(observations[i], bone_lengths=base * scale,
                                                       depth_m=depths[i].z_m, depth_sigma_m=depths[i].sigma_m),
                                   self._temporal_sigma())
        return out

    @staticmethod
    def _measure_size(observations: list[refinement.HandObservation], depths: list[np.ndarray],
                      intrinsics: CameraIntrinsics) -> list[float]:
        """Per hand, true size / assumed size: the median of measured over monocular joint depth.

        A pinhole camera cannot tell a hand k times larger at k times the distance: the monocular fit of the same
        keypoints with the assumed bone lengths is the true hand scaled by 1/k about the camera centre, so the
        depth camera's joint depths over the monocular ones give k. That fit is solved twice: first as it is, then
        from scratch (a warm start would stay near the first) with its relative depth (how far each joint is in
        front of or behind the wrist, as a fraction of the wrist's depth: the same for the true hand and the scaled
        one) taken from the depth camera (``_sensor_relative_depth``, weight SENSOR_RELATIVE_DEPTH_SIGMA_M), since
        the landmark network's relative depth has a per-hand scale error and a hand drawn more foreshortened than
        it is must come nearer to cover its pixels (k +1 % at 1 m). Readings more than OCCLUDER_M nearer than the
        first fit (scaled by its k) see something in front of the joint and are not used for it; with the wrist
        occluded the first k stands.
        """
        plain = [dataclasses.replace(o, previous=None, warm_start=None, depth_m=None) for o in observations]
        first = refinement.refine(plain, intrinsics)
        ratios = [_depth_ratio(fit, z) for fit, z in zip(first, depths)]
        again = [i for i, (fit, z, k) in enumerate(zip(first, depths, ratios))
                 if np.isfinite(z[0]) and z[0] - k * fit.joints[0, 2] > -OCCLUDER_M]
        if not again:
            return ratios
        second = []
        for i in again:
            z = depths[i].copy()
            z[z - ratios[i] * first[i].joints[:, 2] < -OCCLUDER_M] = np.nan
            second.append(dataclasses.replace(plain[i], keypoints_z=_sensor_relative_depth(plain[i].keypoints_z, z,
                                                                             intrinsics.fx),
                                              keypoints_z_sigma_m=SENSOR_RELATIVE_DEPTH_SIGMA_M))
        for i, fit in zip(again, refinement.refine(second, intrinsics)):
            ratios[i] = _depth_ratio(fit, depths[i])
        return ratios

    def _result(self, det: HandDetection, fit: refinement.HandFit, obs: refinement.HandObservation,
                pose: tuple[np.ndarray, np.ndarray | None], want_mesh: bool) -> HandResult:
        """HandResult of one refined hand with its wrist pose (position, quaternion or None)."""
        joints = fit.joints.astype(np.float32)
        scale_px = max(float(det.roi.width), 1.0) * CONFIDENCE_RESIDUAL_FRACTION if det.roi is not None else 10.0
        confidence = (float(det.score) * np.exp(-((fit.residual_px / scale_px) ** 2))).astype(np.float32)
        position, quaternion = pose
        result = HandResult(
            detection=det, joints_3d=joints, joint_confidence=confidence,
            wrist_position=position.astype(np.float32),
            wrist_quaternion=None if quaternion is None else quaternion.astype(np.float32),
            fit_residual_px=fit.mean_residual_px,
            placement=PLACEMENT_MONOCULAR if obs.depth_m is None else PLACEMENT_DEPTH,
            hand_length_m=hand_length_of(obs.bone_lengths),
        )
        if want_mesh:
            self._attach_mesh(result, fit, obs)
        return result

    def _mano_layer(self, side: str) -> Any:
        """The MANO layer for ``side`` when mano_dir holds its model file, else None (logged once)."""
        if not self.mano_dir:
            return None
        if not self._mano_checked:
            self._mano_checked = True
            from hand_recon_ros.models.mano_loader import MANOLoadError, load_mano_models

            try:
                self._mano = load_mano_models(self.mano_dir)
            except MANOLoadError as exc:
                log.warning("MANO models not used (%s); using the open hand mesh", exc)
                self._mano = {}
        return self._mano.get(side)

    def _attach_mesh(self, result: HandResult, fit: refinement.HandFit, obs: refinement.HandObservation) -> None:
        """Mesh (MANO when available, else the open hand mesh) posed on the refined joints."""
        layer = self._mano_layer(result.side)
        if layer is not None:
            from hand_recon_ros.models.inverse_kinematics import mano_from_joints

            pose, shape, vertices = mano_from_joints(layer, fit.joints)
            result.mesh = HandMesh(vertices.astype(np.float32), layer.faces.astype(np.int32))
            result.mano_pose, result.mano_shape = pose.astype(np.float32), shape.astype(np.float32)
            return
        from hand_recon_ros.models.open_hand_mesh import posed_mesh

        vertices, faces = posed_mesh(fit.rotation, fit.translation, fit.angles, obs.bone_lengths, result.side,
                                     fit.palm_spread)
        result.mesh = HandMesh(vertices.astype(np.float32), faces.astype(np.int32))
