"""Model files: cache location, fetch from the real mediapipe wheel, verification stamp, errors, ONNX keys, CLI."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from hand_recon_ros.cli import main as cli_main
from hand_recon_ros.models import model_files as mf


@pytest.fixture(scope="module")
def cached_tflite() -> dict[str, Path]:
    """The four verified TFLite files in the user's cache (fetched once; `make setup` normally did it)."""
    return mf.fetch_tflite(quiet=True)


@pytest.fixture()
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Make pip unable to reach any package index (a real offline pip, not a mock)."""
    empty = tmp_path / "no_wheels"
    empty.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)


def _seed_cache(cache: Path, cached_tflite: dict[str, Path], names: tuple[str, ...] | None = None) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    for name, path in cached_tflite.items():
        if names is None or name in names:
            shutil.copyfile(path, cache / path.name)


def test_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(mf.CACHE_ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert mf.model_cache_dir() == tmp_path / "xdg" / "hand_recon_ros"
    monkeypatch.setenv(mf.CACHE_ENV_VAR, str(tmp_path / "env"))
    assert mf.model_cache_dir() == tmp_path / "env"
    assert mf.model_cache_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.delenv(mf.CACHE_ENV_VAR)
    assert mf.model_cache_dir() == Path.home() / ".cache" / "hand_recon_ros"


def test_fetch_downloads_wheel_and_verifies(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    paths = mf.fetch_tflite(cache, quiet=True)
    assert set(paths) == set(mf.TFLITE_FILES)
    for name, path in paths.items():
        assert path.parent == cache and path.is_file()
        assert mf.file_sha256(path) == mf.TFLITE_FILES[name].sha256
    leftovers = [p.name for p in cache.iterdir() if p.suffix in (".whl", ".tmp")]
    assert leftovers == []  # the wheel lived in a temporary directory and is gone


def test_offline_missing_file_names_file_sha_and_fix(offline: None, tmp_path: Path) -> None:
    with pytest.raises(mf.ModelFileError) as info:
        mf.ensure_models("lite", cache_dir=tmp_path / "cache", convert=False)
    text = str(info.value)
    spec = mf.TFLITE_FILES["palm_detection_lite"]
    assert str(tmp_path / "cache" / spec.filename) in text
    assert spec.sha256 in text
    assert "hand-recon models fetch" in text and spec.member in text


def test_corrupt_file_is_fetched_again(tmp_path: Path, cached_tflite: dict[str, Path]) -> None:
    cache = tmp_path / "cache"
    _seed_cache(cache, cached_tflite)
    target = cache / "hand_landmark_full.tflite"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    paths = mf.ensure_models("full", cache_dir=cache, convert=False)
    assert mf.file_sha256(paths.landmark_tflite) == mf.TFLITE_FILES["hand_landmark_full"].sha256


def test_corrupt_file_offline_is_one_clear_error(offline: None, tmp_path: Path, cached_tflite: dict[str, Path]) -> None:
    cache = tmp_path / "cache"
    _seed_cache(cache, cached_tflite)
    (cache / "palm_detection_full.tflite").write_bytes(b"not a model")
    with pytest.raises(mf.ModelFileError) as info:
        mf.ensure_models("full", cache_dir=cache, convert=False)
    assert "palm_detection_full.tflite" in str(info.value)
    assert mf.TFLITE_FILES["palm_detection_full"].sha256 in str(info.value)


def test_verified_files_are_not_rehashed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cached_tflite: dict[str, Path]
) -> None:
    cache = tmp_path / "cache"
    _seed_cache(cache, cached_tflite)
    mf.ensure_models("full", cache_dir=cache, convert=False)  # hashes once, writes the stamp
    calls: list[Path] = []
    real_hash = mf.file_sha256
    monkeypatch.setattr(mf, "file_sha256", lambda p: calls.append(p) or real_hash(p))
    mf.ensure_models("full", cache_dir=cache, convert=False)
    assert calls == []
    landmark = cache / "hand_landmark_full.tflite"
    os.utime(landmark, ns=(landmark.stat().st_atime_ns, landmark.stat().st_mtime_ns + 10**9))
    mf.ensure_models("full", cache_dir=cache, convert=False)
    assert calls == [landmark]  # a changed mtime means the file is checked again


def test_unknown_variant_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown model variant 'huge'"):
        mf.ensure_models("huge", convert=False)


def test_onnx_key_covers_exporter_opset_and_batch() -> None:
    sha = mf.TFLITE_FILES["palm_detection_full"].sha256
    base = mf.onnx_cache_key(sha, "static1")
    assert len(base) == mf.ONNX_KEY_CHARS
    assert mf.onnx_cache_key(sha, "dynamic") != base
    assert mf.onnx_cache_key(mf.TFLITE_FILES["palm_detection_lite"].sha256, "static1") != base


def test_convert_builds_keyed_onnx_and_rebuilds_on_new_exporter(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cached_tflite: dict[str, Path]
) -> None:
    import onnxruntime as ort

    cache = tmp_path / "cache"
    _seed_cache(cache, cached_tflite, names=("palm_detection_lite", "hand_landmark_lite"))
    paths = mf.ensure_models("lite", cache_dir=cache)
    assert paths.palm_onnx.is_file() and paths.landmark_onnx.is_file()
    assert paths.palm_onnx.parent == cache and paths.palm_onnx.name.startswith("palm_detection_lite.")
    session = ort.InferenceSession(str(paths.landmark_onnx), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    assert session.get_inputs()[0].shape[1:] == [224, 224, 3]
    assert isinstance(session.get_inputs()[0].shape[0], str)  # dynamic batch
    monkeypatch.setattr(mf, "EXPORTER_VERSION", mf.EXPORTER_VERSION + "-next")
    again = mf.ensure_models("lite", cache_dir=cache)
    assert again.palm_onnx != paths.palm_onnx and again.palm_onnx.is_file()


def test_cli_fetch_quiet_and_info(
    tmp_path: Path, cached_tflite: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    cache = tmp_path / "cache"
    _seed_cache(cache, cached_tflite)
    assert cli_main(["models", "fetch", "--variant", "all", "--no-convert", "--quiet", "--models-dir", str(cache)]) == 0
    assert capsys.readouterr().out == ""
    assert cli_main(["models", "info", "--models-dir", str(cache)]) == 1  # ONNX files not converted yet
    out = capsys.readouterr().out
    assert mf.TFLITE_FILES["hand_landmark_lite"].sha256 in out and "not converted yet" in out
    (cache / "palm_detection_lite.tflite").write_bytes(b"junk")
    assert cli_main(["models", "info", "--variant", "lite", "--models-dir", str(cache)]) == 1
    assert "CORRUPT" in capsys.readouterr().out


def test_cli_cache_dir_is_a_deprecated_name_of_models_dir(
    tmp_path: Path, cached_tflite: dict[str, Path], capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    """`--cache-dir DIR` still selects the model folder and logs one WARNING naming --models-dir."""
    cache = tmp_path / "cache"
    _seed_cache(cache, cached_tflite)
    with caplog.at_level(logging.WARNING, logger="hand_recon_ros.cli"):
        assert cli_main(["models", "info", "--variant", "lite", "--cache-dir", str(cache)]) == 1  # no ONNX yet
    assert f"cache: {cache}" in capsys.readouterr().out
    warnings = [r.getMessage() for r in caplog.records if "--cache-dir is deprecated" in r.getMessage()]
    assert len(warnings) == 1 and "use --models-dir" in warnings[0]


def test_cli_fetch_offline_reports_error(offline: None, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["models", "fetch", "--quiet", "--models-dir", str(tmp_path / "empty")]) == 1
    err = capsys.readouterr().err
    assert "palm_detection_full.tflite" in err and "hand-recon models fetch" in err


def test_corrupt_onnx_is_rebuilt(tmp_path: Path, cached_tflite: dict[str, Path]) -> None:
    import onnxruntime as ort

    cache = tmp_path / "cache"
    _seed_cache(cache, cached_tflite, names=("palm_detection_lite", "hand_landmark_lite"))
    paths = mf.ensure_models("lite", cache_dir=cache)
    good = paths.palm_onnx.read_bytes()
    paths.palm_onnx.write_bytes(good[: len(good) // 2])  # truncated, as by a full disk or a killed copy
    again = mf.ensure_models("lite", cache_dir=cache)
    assert again.palm_onnx == paths.palm_onnx and again.palm_onnx.read_bytes() == good
    session = ort.InferenceSession(str(again.palm_onnx), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["Identity", "Identity_1"]
