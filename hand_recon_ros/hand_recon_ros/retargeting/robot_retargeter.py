"""dex-retargeting wrapper: named or YAML configs + a URDF folder -> per-side robot joint positions, checked.

``RobotRetargeting(["allegro_hand_right", "allegro_hand_left"], urdf_dir)`` loads one retargeter per side.
Side rule: a config whose name (file stem for a YAML path) ends in ``_left`` / ``_right`` (or has
``_left_`` / ``_right_`` before a variant such as ``_dexpilot``) applies to that side only; a name without a
side applies to both. Every output is finite and inside the URDF's joint limits; a hand whose optimisation
fails, or whose joints cannot be used, gives None for that frame (never NaN or out-of-limit values).
Loading errors name the config file and the URDF. The library is imported lazily (it is an optional extra,
``requirements/teleop.txt``): without it, only asking for retargeting fails, with the pip command to fix it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hand_recon_ros.retargeting.operator_frame import OperatorFrameError, to_operator_frame

log = logging.getLogger(__name__)

SIDES: tuple[str, ...] = ("left", "right")
INSTALL_HINT = "pip install -r requirements/teleop.txt (dex-retargeting)"
# Sub-folders of the dex_retargeting package searched for a config given by name, in order.
CONFIG_SUBDIRS: tuple[str, ...] = ("configs/teleop", "configs/offline")
# Slack (radians or metres) by which the optimiser may leave a joint range: its bounds are the URDF limits
# widened by 1e-3 (dex_retargeting Optimizer.set_joint_limit); such values are clipped back onto the limit.
LIMIT_SLACK_RAD = 2e-3


class RetargetingError(ValueError):
    """A retargeting config, URDF or option that cannot be used; the message names the file or value."""


class RetargetingUnavailableError(RetargetingError):
    """Retargeting was requested but the dex-retargeting library is not installed."""


@dataclass(frozen=True)
class RetargetOutput:
    """Robot joint positions for one hand: names in the robot's (URDF/pinocchio) order, radians or metres."""

    joint_names: tuple[str, ...]
    positions: np.ndarray  # (J,) float64, finite, within the URDF limits
    time_ms: float


def _library() -> Any:
    """The dex_retargeting package, or RetargetingUnavailableError saying how to install it."""
    try:
        import dex_retargeting
        from dex_retargeting.retargeting_config import RetargetingConfig  # noqa: F401  (checks the install)
    except ImportError as exc:
        raise RetargetingUnavailableError(
            f"retargeting needs the dex-retargeting library, which cannot be imported ({exc}); {INSTALL_HINT}"
        ) from exc
    # URDFs for retargeting are kinematics only: one warning per missing mesh file would flood the log.
    logging.getLogger("dex_retargeting.yourdfpy").setLevel(logging.ERROR)
    return dex_retargeting


def shipped_config_names() -> list[str]:
    """Names of the configs shipped in the dex-retargeting wheel (without .yml)."""
    root = Path(_library().__file__).parent
    return sorted({p.stem for sub in CONFIG_SUBDIRS for p in (root / sub).glob("*.yml")})


def resolve_config_path(name: str) -> Path:
    """A config given as a YAML path, or by the name of one shipped in the wheel; RetargetingError if neither."""
    path = Path(name).expanduser()
    if path.suffix in (".yml", ".yaml") or path.parent != Path("."):
        if not path.is_file():
            raise RetargetingError(f"retargeting config {path} does not exist")
        return path.resolve()
    root = Path(_library().__file__).parent
    for sub in CONFIG_SUBDIRS:
        candidate = root / sub / f"{name}.yml"
        if candidate.is_file():
            return candidate
    raise RetargetingError(
        f"unknown retargeting config {name!r}: not a YAML file and not one of the shipped configs "
        f"({', '.join(shipped_config_names())})"
    )


def config_side(name: str) -> str | None:
    """'left' / 'right' when the config's name says so (see module docstring), else None (both sides)."""
    stem = Path(name).stem if Path(name).suffix in (".yml", ".yaml") else Path(name).name
    for side in SIDES:
        if stem.endswith(f"_{side}") or f"_{side}_" in stem:
            return side
    return None


def _read_config(path: Path) -> dict[str, Any]:
    """The ``retargeting`` mapping of a config YAML; RetargetingError naming the file when unusable."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RetargetingError(f"retargeting config {path} cannot be read: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("retargeting"), dict):
        raise RetargetingError(f"retargeting config {path} has no 'retargeting' mapping")
    cfg = dict(data["retargeting"])
    if not isinstance(cfg.get("urdf_path"), str):
        raise RetargetingError(f"retargeting config {path} has no urdf_path")
    return cfg


def resolve_urdf(urdf_path: str, urdf_dir: Path, config_path: Path) -> Path:
    """The URDF a config names: absolute, else under ``urdf_dir`` as written or by file name alone."""
    given = Path(urdf_path)
    candidates = [given] if given.is_absolute() else [urdf_dir / given, urdf_dir / given.name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise RetargetingError(
        f"URDF for retargeting config {config_path} not found: tried {', '.join(str(c) for c in candidates)}"
    )


class HandRetargeter:
    """One dex-retargeting config for one side: camera-frame joints in, checked robot joint positions out."""

    def __init__(self, config: str, urdf_dir: str | Path, side: str) -> None:
        """Load ``config`` (name or YAML path) with its URDF from ``urdf_dir``; RetargetingError names the file."""
        if side not in SIDES:
            raise RetargetingError(f"side must be 'left' or 'right', got {side!r}")
        _library()
        from dex_retargeting.retargeting_config import RetargetingConfig

        urdf_root = Path(urdf_dir).expanduser()
        if not urdf_root.is_dir():
            raise RetargetingError(f"URDF folder {urdf_root} does not exist")
        self.side = side
        self.config_path = resolve_config_path(config)
        cfg = _read_config(self.config_path)
        self.urdf_path = resolve_urdf(cfg["urdf_path"], urdf_root, self.config_path)
        try:
            built = RetargetingConfig.from_dict(cfg, {"urdf_path": str(self.urdf_path)})
            with _library_temp_dir():
                self._retargeting = built.build()
        except Exception as exc:  # the library raises ValueError, RuntimeError, XML and pinocchio errors
            raise RetargetingError(
                f"retargeting config {self.config_path} with URDF {self.urdf_path} cannot be loaded: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        optimizer = self._retargeting.optimizer
        self.kind = str(optimizer.retargeting_type)
        self._indices = np.asarray(optimizer.target_link_human_indices)
        self.joint_names: tuple[str, ...] = tuple(self._retargeting.joint_names)
        self.joint_limits = np.asarray(optimizer.robot.joint_limits, dtype=np.float64)  # (J, 2), URDF order
        self._fixed = np.zeros(len(optimizer.idx_pin2fixed), dtype=np.float32)
        self.failures: dict[str, int] = {}

    def _reference(self, operator_joints: np.ndarray) -> np.ndarray:
        """The optimiser's target: joint positions (POSITION) or vectors origin -> task (VECTOR, DEXPILOT)."""
        if self.kind == "POSITION":
            return operator_joints[self._indices]
        return operator_joints[self._indices[1]] - operator_joints[self._indices[0]]

    def _fail(self, reason: str) -> None:
        self.failures[reason] = self.failures.get(reason, 0) + 1

    def retarget(self, joints_camera: np.ndarray | None, mirrored: bool = False) -> RetargetOutput | None:
        """Robot joint positions for camera-frame joints (21, 3) metres; None when this frame's hand fails."""
        if joints_camera is None:
            self._fail("no 3D joints")
            return None
        try:
            operator = to_operator_frame(joints_camera, self.side, mirrored)
        except OperatorFrameError as exc:
            self._fail(str(exc))
            return None
        started = time.perf_counter()
        try:  # the library print()s optimiser errors: keep them off stdout (it may carry our JSON lines)
            with contextlib.redirect_stdout(io.StringIO()):
                positions = np.asarray(self._retargeting.retarget(self._reference(operator)), dtype=np.float64)
            status = int(self._retargeting.optimizer.opt.last_optimize_result())
        except Exception as exc:  # nlopt raises RoundoffLimited, ValueError, RuntimeError on bad problems
            self._fail(f"optimisation raised {type(exc).__name__}")
            return None
        time_ms = (time.perf_counter() - started) * 1e3
        if status < 0:  # nlopt failure codes are negative; the library then returns the previous answer
            self._fail(f"nlopt status {status}")
            return None
        low, high = self.joint_limits[:, 0], self.joint_limits[:, 1]
        if positions.shape != (len(self.joint_names),) or not np.all(np.isfinite(positions)):
            self._fail("non-finite result")
            return None
        if np.any(positions < low - LIMIT_SLACK_RAD) or np.any(positions > high + LIMIT_SLACK_RAD):
            self._fail("result outside the joint limits")
            return None
        return RetargetOutput(self.joint_names, np.clip(positions, low, high), time_ms)

    def reset(self) -> None:
        """Forget the warm start and the library's low-pass state (new track, new video)."""
        self._retargeting.reset()
        if self._retargeting.filter is not None:
            self._retargeting.filter.reset()


class RobotRetargeting:
    """Retargeters for the configs given, at most one per side (see the module docstring for the side rule)."""

    def __init__(self, configs: Sequence[str], urdf_dir: str | Path) -> None:
        """Load every config now (a config or URDF that cannot be loaded raises RetargetingError naming it)."""
        if not configs:
            raise RetargetingError("no retargeting config given")
        self.by_side: dict[str, HandRetargeter] = {}
        for config in configs:
            side = config_side(config)
            for target in (side,) if side else SIDES:
                if target in self.by_side:
                    raise RetargetingError(
                        f"two retargeting configs for the {target} hand: {self.by_side[target].config_path} "
                        f"and {config}"
                    )
                self.by_side[target] = HandRetargeter(config, urdf_dir, target)
        log.info("retargeting: %s", "; ".join(
            f"{s}: {r.config_path.name} ({r.kind}, {len(r.joint_names)} joints, {r.urdf_path})"
            for s, r in self.by_side.items()))

    def retarget(self, side: str, joints_camera: np.ndarray | None, mirrored: bool = False) -> RetargetOutput | None:
        """Robot joints for one hand of ``side``; None when no config covers that side or the hand fails."""
        retargeter = self.by_side.get(side)
        return None if retargeter is None else retargeter.retarget(joints_camera, mirrored)

    def reset(self, side: str | None = None) -> None:
        """Reset one side's retargeter (or all)."""
        for name, retargeter in self.by_side.items():
            if side is None or name == side:
                retargeter.reset()

    def failures(self) -> dict[str, int]:
        """Failed hands per side and reason, e.g. {'right: nlopt status -4': 2}."""
        return {f"{side}: {reason}": n for side, r in self.by_side.items() for reason, n in r.failures.items()}


@contextlib.contextmanager
def _library_temp_dir() -> Iterator[None]:
    """Run dex-retargeting's build with its temporary URDF copy (``tempfile.mkdtemp``, never removed by the
    library: one folder per build) inside a folder of ours that is deleted afterwards; pinocchio has read it."""
    previous = tempfile.tempdir
    with tempfile.TemporaryDirectory(prefix="hand_recon_retarget-") as folder:
        tempfile.tempdir = folder
        try:
            yield
        finally:
            tempfile.tempdir = previous
