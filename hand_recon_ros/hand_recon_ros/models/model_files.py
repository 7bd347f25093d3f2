"""MediaPipe's palm and hand-landmark TFLite files: fetch from the mediapipe wheel, verify, cache, convert to ONNX.

The files come from PyPI ``mediapipe==0.10.14`` (Apache-2.0). The wheel is downloaded with pip but never
installed: it is opened as a zip, the four ``.tflite`` members are extracted and checked against known sha256
sums, and the wheel is deleted. Converted ONNX files live beside them, named by a key over everything that
changes their content, so a new exporter or opset builds a new file instead of reusing a stale one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hand_recon_ros.models.onnx_format import EXPORTER_VERSION, ONNX_OPSET

LOG = logging.getLogger(__name__)

MEDIAPIPE_VERSION = "0.10.14"
MEDIAPIPE_REQUIREMENT = f"mediapipe=={MEDIAPIPE_VERSION}"
# Fallback when pip finds no wheel for this platform: the .tflite members are the same in every wheel.
FALLBACK_PLATFORM = "manylinux_2_17_x86_64"
FALLBACK_PYTHON_VERSION = "3.11"
PIP_TIMEOUT_S = 300.0
CACHE_ENV_VAR = "HAND_RECON_CACHE_DIR"
CACHE_SUBDIR = "hand_recon_ros"
STAMP_FILE = "verified.json"
LOCK_FILE = ".lock"
FETCH_HINT = "run 'hand-recon models fetch' (needs access to PyPI)"
VARIANTS: tuple[str, ...] = ("full", "lite")
HASH_CHUNK_BYTES = 1 << 20
CACHE_FILE_MODE = 0o644

# Cache-key inputs of the converted ONNX files (models/onnx_format.py; bump EXPORTER_VERSION there).
PALM_BATCH_MODE = "static1"
LANDMARK_BATCH_MODE = "dynamic"
ONNX_KEY_CHARS = 12


@dataclass(frozen=True)
class TFLiteFile:
    """One network file inside the mediapipe wheel: cache name, wheel member path and its sha256."""

    name: str
    member: str
    sha256: str

    @property
    def filename(self) -> str:
        """The file's name in the cache directory."""
        return f"{self.name}.tflite"


TFLITE_FILES: dict[str, TFLiteFile] = {
    f.name: f
    for f in (
        TFLiteFile(
            "palm_detection_full",
            "mediapipe/modules/palm_detection/palm_detection_full.tflite",
            "1b14e9422c6ad006cde6581a46c8b90dd573c07ab7f3934b5589e7cea3f89a54",
        ),
        TFLiteFile(
            "palm_detection_lite",
            "mediapipe/modules/palm_detection/palm_detection_lite.tflite",
            "e9a4aaddf90dda56a87235303cf00e4c2d3fb28725f68fd88772997dac905c18",
        ),
        TFLiteFile(
            "hand_landmark_full",
            "mediapipe/modules/hand_landmark/hand_landmark_full.tflite",
            "11c272b891e1a99ab034208e23937a8008388cf11ed2a9d776ed3d01d0ba00e3",
        ),
        TFLiteFile(
            "hand_landmark_lite",
            "mediapipe/modules/hand_landmark/hand_landmark_lite.tflite",
            "048edd3645c9bf7397d19a9f6e3a42957d6e414c9bea6598030a2e9b624156e6",
        ),
    )
}


class ModelFileError(RuntimeError):
    """A model file is missing, corrupt or could not be fetched; the message names the file and the fix."""


@dataclass(frozen=True)
class ModelPaths:
    """The cached files of one variant: both TFLite graphs and their ONNX exports."""

    variant: str  # "full" | "lite"
    palm_tflite: Path
    landmark_tflite: Path
    palm_onnx: Path  # static batch 1, input "image" float32 [1,192,192,3] NHWC RGB [0,1]
    landmark_onnx: Path  # dynamic batch, input "image" float32 [N,224,224,3]


def model_cache_dir(override: str | Path | None = None) -> Path:
    """The model cache: ``override`` > $HAND_RECON_CACHE_DIR > ${XDG_CACHE_HOME:-~/.cache}/hand_recon_ros."""
    if override is not None and str(override) != "":
        return Path(override).expanduser()
    env = os.environ.get(CACHE_ENV_VAR)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / CACHE_SUBDIR


def file_sha256(path: Path) -> str:
    """The sha256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def onnx_cache_key(tflite_sha256: str, batch_mode: str) -> str:
    """Short content key of a converted file: (tflite sha256, exporter version, opset, batch mode)."""
    text = f"{tflite_sha256}|exporter={EXPORTER_VERSION}|opset={ONNX_OPSET}|batch={batch_mode}"
    return hashlib.sha256(text.encode()).hexdigest()[:ONNX_KEY_CHARS]


def _missing_message(spec: TFLiteFile, path: Path, problem: str) -> str:
    return (
        f"model file {path} ({problem}); expected sha256 {spec.sha256}. Fix: {FETCH_HINT}, "
        f"or copy '{spec.member}' from the {MEDIAPIPE_REQUIREMENT} wheel to {path}"
    )


# -- verification stamp ---------------------------------------------------------------------------------------
def _read_stamp(cache_dir: Path) -> dict[str, dict[str, object]]:
    try:
        data = json.loads((cache_dir / STAMP_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_stamp(cache_dir: Path, stamp: dict[str, dict[str, object]], names: list[str]) -> None:
    """Store the entries of ``names`` (set or removed), merged into the stamp as it is on disk now."""
    current = _read_stamp(cache_dir)
    for name in names:
        if name in stamp:
            current[name] = stamp[name]
        else:
            current.pop(name, None)
    with contextlib.suppress(OSError):  # the stamp only saves time; failing to write it is harmless
        _atomic_write_bytes(cache_dir / STAMP_FILE, json.dumps(current, indent=1, sort_keys=True).encode())


def _stat_key(path: Path) -> dict[str, object]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _verified(path: Path, expected_sha256: str, stamp: dict[str, dict[str, object]]) -> bool:
    """True when ``path`` exists with the expected sha256; a stamp keyed by size+mtime skips re-hashing."""
    if not path.is_file():
        return False
    key = _stat_key(path)
    entry = stamp.get(path.name)
    if entry and entry.get("sha256") == expected_sha256 and all(entry.get(k) == v for k, v in key.items()):
        return True
    if file_sha256(path) != expected_sha256:
        stamp.pop(path.name, None)
        return False
    stamp[path.name] = {**key, "sha256": expected_sha256}
    return True


# -- file helpers -----------------------------------------------------------------------------------------
def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, CACHE_FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _cache_lock(cache_dir: Path) -> Iterator[None]:
    """Serialise slow fetch/convert work between processes sharing one cache (tests run in parallel)."""
    try:
        fh = open(cache_dir / LOCK_FILE, "a+b")  # closed by the with-block below
    except OSError as exc:
        raise ModelFileError(
            f"cannot write to the model cache {cache_dir} ({exc}); make it writable, "
            f"or set ${CACHE_ENV_VAR} / pass --models-dir to a writable directory"
        ) from exc
    with fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _make_cache_dir(cache_dir: Path) -> Path:
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelFileError(
            f"cannot create the model cache directory {cache_dir} ({exc}); "
            f"set ${CACHE_ENV_VAR} or pass --models-dir to a writable directory"
        ) from exc
    return cache_dir


# -- fetching -------------------------------------------------------------------------------------------------
def _pip_download(dest: Path, quiet: bool) -> Path:
    """Download the mediapipe wheel (no install, no deps) into ``dest``; return its path."""
    base = [sys.executable, "-m", "pip", "download", MEDIAPIPE_REQUIREMENT, "--no-deps", "--only-binary=:all:"]
    base += ["--disable-pip-version-check", "-d", str(dest)]
    if quiet:
        base.append("--quiet")
    attempts = [base, base + ["--platform", FALLBACK_PLATFORM, "--python-version", FALLBACK_PYTHON_VERSION]]
    errors: list[str] = []
    for cmd in attempts:
        try:
            proc = subprocess.run(cmd, capture_output=quiet, text=True, timeout=PIP_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            errors.append(str(exc))
            continue
        wheels = sorted(dest.glob("mediapipe-*.whl"))
        if proc.returncode == 0 and wheels:
            return wheels[0]
        tail = (proc.stderr or "").strip().splitlines()[-1:] if quiet else []
        errors.append(f"pip exit status {proc.returncode}{': ' + tail[0] if tail else ''}")
    raise ModelFileError(f"could not download {MEDIAPIPE_REQUIREMENT} with pip ({'; '.join(errors)})")


def _extract_from_wheel(wheel: Path, specs: list[TFLiteFile], cache_dir: Path) -> None:
    """Copy the members of ``specs`` from the wheel into the cache, each checked before it is renamed in."""
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for spec in specs:
            target = cache_dir / spec.filename
            if spec.member not in names:
                raise ModelFileError(_missing_message(spec, target, f"'{spec.member}' is not in {wheel.name}"))
            data = zf.read(spec.member)
            got = hashlib.sha256(data).hexdigest()
            if got != spec.sha256:
                raise ModelFileError(
                    _missing_message(spec, target, f"the wheel's copy has sha256 {got}, not the expected one")
                )
            _atomic_write_bytes(target, data)


def _fetch(specs: list[TFLiteFile], cache_dir: Path, quiet: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="hand_recon_wheel_") as tmp:  # the wheel is deleted with it
        if not quiet:
            print(f"downloading {MEDIAPIPE_REQUIREMENT} (wheel only, not installed) ...", flush=True)
        try:
            wheel = _pip_download(Path(tmp), quiet)
        except ModelFileError as exc:
            first = specs[0]
            raise ModelFileError(
                _missing_message(first, cache_dir / first.filename, f"missing, and {exc}")
                + (f" (also missing: {', '.join(s.filename for s in specs[1:])})" if len(specs) > 1 else "")
            ) from exc
        _extract_from_wheel(wheel, specs, cache_dir)


def fetch_tflite(cache_dir: Path | None = None, quiet: bool = False) -> dict[str, Path]:
    """Make sure all four verified TFLite files are in the cache (download only what is missing or corrupt).

    Returns ``{name: path}`` keyed by ``palm_detection_full``, ``palm_detection_lite``, ``hand_landmark_full``,
    ``hand_landmark_lite``. Raises ModelFileError naming the file, its expected sha256 and the fix.
    """
    paths = _ensure_tflite(list(TFLITE_FILES.values()), model_cache_dir(cache_dir), quiet)
    if not quiet:
        for name, path in paths.items():
            print(f"{name}: {path}")
    return paths


def _ensure_tflite(specs: list[TFLiteFile], cache_dir: Path, quiet: bool) -> dict[str, Path]:
    paths = {s.name: cache_dir / s.filename for s in specs}
    stamp = _read_stamp(cache_dir)
    before = json.dumps(stamp, sort_keys=True)
    todo = [s for s in specs if not _verified(paths[s.name], s.sha256, stamp)]
    if not todo:
        if json.dumps(stamp, sort_keys=True) != before:
            _write_stamp(cache_dir, stamp, [s.filename for s in specs])
        return paths
    _make_cache_dir(cache_dir)
    with _cache_lock(cache_dir):
        stamp = _read_stamp(cache_dir)  # another process may have fetched while we waited for the lock
        todo = [s for s in specs if not _verified(paths[s.name], s.sha256, stamp)]
        for attempt in range(2):  # a corrupt file is fetched again once, then it is an error
            if not todo:
                break
            if attempt:
                LOG.warning("re-fetching %s: still not verified", ", ".join(s.filename for s in todo))
            _fetch(todo, cache_dir, quiet)
            todo = [s for s in todo if not _verified(paths[s.name], s.sha256, stamp)]
        _write_stamp(cache_dir, stamp, [s.filename for s in specs])
        if todo:
            spec = todo[0]
            raise ModelFileError(_missing_message(spec, paths[spec.name], "sha256 mismatch after re-fetching"))
    return paths


# -- ONNX conversion -----------------------------------------------------------------------------------------
def onnx_path_for(tflite_path: Path, tflite_sha256: str, batch_mode: str) -> Path:
    """Where the ONNX export of a TFLite file is cached: beside it, named by its content key."""
    stem = tflite_path.name.removesuffix(".tflite")
    return tflite_path.with_name(f"{stem}.{onnx_cache_key(tflite_sha256, batch_mode)}.onnx")


def _onnx_verified(onnx_path: Path, stamp: dict[str, dict[str, object]]) -> bool:
    """True when ``onnx_path`` is the file this cache built (sha256 recorded in the stamp at conversion)."""
    entry = stamp.get(onnx_path.name)
    if not entry or not onnx_path.is_file():
        return False
    key = _stat_key(onnx_path)
    if all(entry.get(k) == v for k, v in key.items()):
        return True
    if file_sha256(onnx_path) != entry.get("sha256"):
        return False
    stamp[onnx_path.name] = {**entry, **key}
    return True


def _ensure_onnx(kind: str, tflite_path: Path, onnx_path: Path, cache_dir: Path, quiet: bool) -> None:
    if _onnx_verified(onnx_path, _read_stamp(cache_dir)):
        return
    with _cache_lock(cache_dir):
        stamp = _read_stamp(cache_dir)
        if _onnx_verified(onnx_path, stamp):
            _write_stamp(cache_dir, stamp, [onnx_path.name])
            return
        if onnx_path.exists():
            LOG.warning("rebuilding %s: it changed since it was built or is not in %s", onnx_path, STAMP_FILE)
        if not quiet:
            print(f"converting {tflite_path.name} -> {onnx_path.name} ...", flush=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=f".{onnx_path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            from hand_recon_ros.models import onnx_export  # torch is imported only when a conversion is needed

            if kind == "palm":
                onnx_export.export_palm(tflite_path, Path(tmp))
            else:
                onnx_export.export_landmark(tflite_path, Path(tmp))
            os.chmod(tmp, CACHE_FILE_MODE)
            sha = file_sha256(Path(tmp))
            os.replace(tmp, onnx_path)
        except Exception as exc:
            raise ModelFileError(
                f"could not convert {tflite_path} to ONNX ({type(exc).__name__}: {exc}); "
                f"delete {cache_dir} and {FETCH_HINT}"
            ) from exc
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        stamp[onnx_path.name] = {**_stat_key(onnx_path), "sha256": sha}
        _write_stamp(cache_dir, stamp, [onnx_path.name])


def ensure_models(
    variant: str = "full", cache_dir: str | Path | None = None, convert: bool = True, quiet: bool = True
) -> ModelPaths:
    """The cached, verified TFLite files of ``variant`` and (``convert``) their ONNX exports, built if missing.

    With ``convert=False`` the ONNX paths are where the exports would be; they may not exist. Unless ``quiet``,
    downloads and conversions are announced on stdout.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown model variant '{variant}'; choose one of {', '.join(VARIANTS)}")
    cache = model_cache_dir(cache_dir)
    palm_spec = TFLITE_FILES[f"palm_detection_{variant}"]
    landmark_spec = TFLITE_FILES[f"hand_landmark_{variant}"]
    paths = _ensure_tflite([palm_spec, landmark_spec], cache, quiet)
    palm_tflite, landmark_tflite = paths[palm_spec.name], paths[landmark_spec.name]
    result = ModelPaths(
        variant=variant,
        palm_tflite=palm_tflite,
        landmark_tflite=landmark_tflite,
        palm_onnx=onnx_path_for(palm_tflite, palm_spec.sha256, PALM_BATCH_MODE),
        landmark_onnx=onnx_path_for(landmark_tflite, landmark_spec.sha256, LANDMARK_BATCH_MODE),
    )
    if convert:
        _ensure_onnx("palm", palm_tflite, result.palm_onnx, cache, quiet)
        _ensure_onnx("landmark", landmark_tflite, result.landmark_onnx, cache, quiet)
    return result


def cached_models(variant: str = "full", cache_dir: str | Path | None = None) -> ModelPaths:
    """The model files of ``variant`` when all four are already cached and verified; never fetches or converts.

    Raises ModelFileError naming every missing or unverified file and ``hand-recon models fetch`` (what a node
    that must not touch the network at start-up reports).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown model variant '{variant}'; choose one of {', '.join(VARIANTS)}")
    cache = model_cache_dir(cache_dir)
    palm_spec = TFLITE_FILES[f"palm_detection_{variant}"]
    landmark_spec = TFLITE_FILES[f"hand_landmark_{variant}"]
    palm_tflite, landmark_tflite = cache / palm_spec.filename, cache / landmark_spec.filename
    paths = ModelPaths(
        variant=variant,
        palm_tflite=palm_tflite,
        landmark_tflite=landmark_tflite,
        palm_onnx=onnx_path_for(palm_tflite, palm_spec.sha256, PALM_BATCH_MODE),
        landmark_onnx=onnx_path_for(landmark_tflite, landmark_spec.sha256, LANDMARK_BATCH_MODE),
    )
    stamp = _read_stamp(cache)
    missing = [str(p) for p, spec in ((palm_tflite, palm_spec), (landmark_tflite, landmark_spec))
               if not _verified(p, spec.sha256, stamp)]
    missing += [str(p) for p in (paths.palm_onnx, paths.landmark_onnx) if not _onnx_verified(p, stamp)]
    if missing:
        raise ModelFileError(
            f"model files missing or not verified in {cache}: {', '.join(missing)}. Fix: run "
            f"'hand-recon models fetch --variant {variant}"
            + (f" --models-dir {cache}'" if cache_dir not in (None, "") else "'")
            + " once (needs access to PyPI)"
        )
    return paths
