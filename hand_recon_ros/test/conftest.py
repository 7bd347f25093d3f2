"""Shared fixtures: paths to ../shared/data and the cached model files.

Outside CI a missing data folder skips the tests that need it, with the reason. Under ``CI=true`` a missing
data file, or a model cache that ``make setup`` should have filled and did not (or that is broken), is a
failure: a CI run cannot pass by skipping.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# Real photos with ground truth live outside the repo (their licenses forbid copying them in).
SHARED_DATA = Path(os.environ.get("HAND_RECON_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))




def in_ci() -> bool:
    """True when the CI environment variable says so (CI=true, as GitHub/GitLab set it, or 1/yes)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing(reason: str) -> NoReturn:
    """Skip with ``reason`` outside CI; under CI=true fail with it (a CI run cannot pass by skipping)."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing test input is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


def check_model_cache(variant: str = "full", cache_dir: str | Path | None = None) -> None:
    """Under CI=true: fail unless the cache already holds the verified TFLite files (no silent re-download)."""
    if not in_ci():
        return
    from hand_recon_ros.models.model_files import TFLITE_FILES, file_sha256, model_cache_dir

    cache = model_cache_dir(cache_dir)
    for name in (f"palm_detection_{variant}", f"hand_landmark_{variant}"):
        spec = TFLITE_FILES[name]
        path = cache / spec.filename
        if not path.is_file():
            missing(f"model cache incomplete: {path} is missing (run `make setup` or `hand-recon models fetch`)")
        if file_sha256(path) != spec.sha256:
            pytest.fail(f"model cache broken: {path} does not have sha256 {spec.sha256} "
                        "(run `hand-recon models fetch`)", pytrace=False)


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    if not SHARED_DATA.is_dir():
        missing(f"real-photo data not present at {SHARED_DATA} (set HAND_RECON_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def woman_hands_path(shared_data_dir: Path) -> Path:
    path = shared_data_dir / "woman_hands.jpg"
    if not path.is_file():
        missing(f"{path} not present")
    return path


@pytest.fixture(scope="session")
def interhand_dir(shared_data_dir: Path) -> Path:
    path = shared_data_dir / "interhand2.6m"
    if not path.is_dir():
        missing(f"{path} not present")
    return path


@pytest.fixture(scope="session")
def model_paths():
    """The cached TFLite + ONNX model files (fetched and converted by `make setup`); checked first under CI."""
    from hand_recon_ros.models.model_files import ensure_models

    check_model_cache("full")
    return ensure_models(variant="full")


@pytest.fixture(scope="session")
def image_mode_pipeline(model_paths):
    """One 2D-only HandPipeline in image mode for the pipeline tests (each module's own fixture resets it)."""
    from hand_recon_ros.pipeline.config import PipelineConfig
    from hand_recon_ros.pipeline.hand_pipeline import HandPipeline

    pipe = HandPipeline(PipelineConfig(mode="image", refine_3d=False))
    yield pipe
    pipe.close()
