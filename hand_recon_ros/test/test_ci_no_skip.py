"""Under CI=true a missing data folder or model cache fails the run instead of skipping (issue 13, item 8)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import check_model_cache, missing  # noqa: E402

from hand_recon_ros.models.model_files import TFLITE_FILES, model_cache_dir  # noqa: E402


@pytest.mark.parametrize("value", ["true", "1", "TRUE"])
def test_missing_input_fails_under_ci(monkeypatch, value):
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match="CI=true: a missing test input is a failure"):
        missing("woman_hands.jpg not present")


@pytest.mark.parametrize("value", [None, "", "false"])
def test_missing_input_skips_outside_ci(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception, match="woman_hands.jpg not present"):
        missing("woman_hands.jpg not present")


def test_an_empty_or_broken_model_cache_fails_under_ci(monkeypatch, tmp_path, model_paths):
    monkeypatch.setenv("CI", "true")
    check_model_cache("full")  # the real cache that `make setup` filled passes
    with pytest.raises(pytest.fail.Exception, match="model cache incomplete: .*palm_detection_full.tflite"):
        check_model_cache("full", tmp_path)
    for name in ("palm_detection_full", "hand_landmark_full"):  # same names and sizes, wrong bytes
        real = model_cache_dir() / TFLITE_FILES[name].filename
        (tmp_path / real.name).write_bytes(b"\0" * real.stat().st_size)
    with pytest.raises(pytest.fail.Exception, match="model cache broken: .*palm_detection_full.tflite"):
        check_model_cache("full", tmp_path)
    monkeypatch.delenv("CI")
    check_model_cache("full", tmp_path)  # outside CI the fixture leaves repairs to ensure_models


@pytest.mark.parametrize("ci", [True, False])
def test_a_suite_without_its_data_fails_under_ci_and_skips_outside(tmp_path, ci):
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["HAND_RECON_SHARED_DATA"] = str(tmp_path / "no-data-here")
    if ci:
        env["CI"] = "true"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(Path(__file__).parent / "test_still_hand.py")],
                          env=env, capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[1])
    if ci:
        assert done.returncode == 1, done.stdout[-2000:]
        assert "2 errors" in done.stdout or "2 failed" in done.stdout, done.stdout[-2000:]
        assert "a missing test input is a failure" in done.stdout
    else:
        assert done.returncode == 0, done.stdout[-2000:]
        assert "2 skipped" in done.stdout, done.stdout[-2000:]
