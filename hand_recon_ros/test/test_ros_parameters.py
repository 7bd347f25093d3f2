"""ros.parameters: validation messages, descriptors, the PipelineConfig mapping and config/hand_recon.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hand_recon_ros.pipeline.config import LIVE_FIELDS, PipelineConfig
from hand_recon_ros.ros.parameters import (
    PARAMETERS,
    PARAMETERS_BY_NAME,
    ParameterValueError,
    deprecation_warnings,
    descriptor,
    pipeline_settings,
    validate_value,
)

CONFIG_FILE = Path(__file__).resolve().parents[1] / "config" / "hand_recon.yaml"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("min_detection_score", 1.5, "min_detection_score must be <= 1.0, got 1.5"),
        ("min_presence_score", float("nan"), "finite number, got nan"),
        ("max_hands", 0, "max_hands must be >= 1, got 0"),
        ("max_hands", 1.0, "must be an integer, got 1.0"),
        ("mirrored", "yes", "true or false, got 'yes'"),
        ("image_transport", "theora", "one of raw, compressed, got 'theora'"),
        ("precision", "fp8", "got 'fp8'"),
        ("marker_lifetime_s", -1.0, "got -1.0"),
        ("nonexistent", 1, "unknown parameter 'nonexistent'"),
        ("backend", "tensorflow", "unknown backend 'tensorflow'"),
    ],
)
def test_invalid_values_are_refused_with_the_value_named(name: str, value, message: str) -> None:
    with pytest.raises(ParameterValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate_value(name, value)


def test_valid_values_pass_and_ints_become_floats_for_doubles() -> None:
    assert validate_value("smoothing", 1) == 1.0 and isinstance(validate_value("smoothing", 1), float)
    assert validate_value("max_hands", 2) == 2
    assert validate_value("image_transport", "compressed") == "compressed"


def test_defaults_are_valid_and_live_set_matches_the_pipeline() -> None:
    for spec in PARAMETERS:
        assert validate_value(spec.name, spec.default) == spec.default
    live_pipeline = {s.pipeline_field for s in PARAMETERS if s.live and s.pipeline_field}
    assert live_pipeline <= LIVE_FIELDS, "a live parameter maps to a pipeline field that cannot change live"
    assert {"min_detection_score", "min_presence_score", "max_hands", "mesh", "smoothing", "mirrored"} <= {
        s.name for s in PARAMETERS if s.live
    }


def test_pipeline_settings_build_a_valid_config() -> None:
    values = {s.name: s.default for s in PARAMETERS}
    settings = pipeline_settings(values, PipelineConfig.field_names())
    assert settings["models_dir"] is None and settings["mano_dir"] is None
    assert "precision" not in settings or "precision" in PipelineConfig.field_names()
    PipelineConfig(**settings).validate()
    for field in ("backend", "model_variant", "max_hands", "mesh", "smoothing", "mirrored", "intra_op_threads",
                  "opencv_threads"):
        assert field in settings


def test_proposal_source_parameters_reach_the_pipeline_and_are_checked() -> None:
    values = {s.name: s.default for s in PARAMETERS} | {"proposal_source": "palm", "proposal_crops": 4}
    settings = pipeline_settings(values, PipelineConfig.field_names())
    config = PipelineConfig(**settings)
    config.validate()
    assert (config.proposal_source, config.proposal_crops) == ("palm", 4)
    with pytest.raises(ParameterValueError, match="tiles"):
        validate_value("proposal_source", "tiles")
    with pytest.raises(ParameterValueError, match="proposal_crops"):
        validate_value("proposal_crops", 0)


def test_models_dir_and_engine_cache_dir_each_reach_their_own_field(tmp_path: Path) -> None:
    """models_dir holds the model files, engine_cache_dir only the engines; neither use is deprecated."""
    values = {s.name: s.default for s in PARAMETERS}
    values.update(models_dir=str(tmp_path / "models"), engine_cache_dir=str(tmp_path / "engines"))
    settings = pipeline_settings(values, PipelineConfig.field_names())
    assert (settings["models_dir"], settings["engine_cache_dir"]) == (str(tmp_path / "models"),
                                                                      str(tmp_path / "engines"))
    assert deprecation_warnings(values) == []
    values.update(engine_cache_dir="")
    settings = pipeline_settings(values, PipelineConfig.field_names())
    assert (settings["models_dir"], settings["engine_cache_dir"]) == (str(tmp_path / "models"), None)
    PipelineConfig(**settings).validate()


def test_engine_cache_dir_alone_is_still_the_model_folder_with_one_warning(tmp_path: Path) -> None:
    """The deprecated use (engine_cache_dir without models_dir) keeps its old meaning and says how to move on."""
    values = {s.name: s.default for s in PARAMETERS}
    values.update(engine_cache_dir=str(tmp_path))
    settings = pipeline_settings(values, PipelineConfig.field_names())
    assert (settings["models_dir"], settings["engine_cache_dir"]) == (str(tmp_path), None)
    PipelineConfig(**settings).validate()
    warnings = deprecation_warnings(values)
    assert len(warnings) == 1 and str(tmp_path) in warnings[0] and "set models_dir" in warnings[0]


def test_node_reads_models_from_the_deprecated_engine_cache_dir_and_warns_once(tmp_path: Path) -> None:
    """A real node started with engine_cache_dir alone logs one deprecation WARNING and looks for its models there."""
    import os
    import signal
    import subprocess
    import sys
    import threading
    import time

    env = dict(os.environ, ROS_DOMAIN_ID=str(210 + os.getpid() % 5))
    proc = subprocess.Popen(
        [sys.executable, "-m", "hand_recon_ros.ros.node", "--ros-args", "-p", f"engine_cache_dir:={tmp_path}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 90.0
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if any("could not load the hand pipeline" in line or "pipeline ready" in line for line in list(lines)):
                break
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    reader.join(timeout=5)
    output = "".join(lines)
    assert sum("without models_dir is read as the model folder" in line for line in lines) == 1, output
    assert f"model files missing or not verified in {tmp_path}" in output, output


def test_descriptors_carry_ranges_and_read_only() -> None:
    score = descriptor(PARAMETERS_BY_NAME["min_detection_score"])
    assert (score.floating_point_range[0].from_value, score.floating_point_range[0].to_value) == (0.0, 1.0)
    assert not score.read_only and score.description
    hands = descriptor(PARAMETERS_BY_NAME["max_hands"])
    assert (hands.integer_range[0].from_value, hands.integer_range[0].to_value) == (1, 2)
    backend = descriptor(PARAMETERS_BY_NAME["backend"])
    assert backend.read_only and "start-up" in backend.description


def test_config_file_documents_every_parameter_with_its_default() -> None:
    data = yaml.safe_load(CONFIG_FILE.read_text(encoding="utf-8"))
    params = data["/**"]["ros__parameters"]
    assert set(params) == set(PARAMETERS_BY_NAME)
    for name, value in params.items():
        assert validate_value(name, value) == PARAMETERS_BY_NAME[name].default, name


def test_node_refuses_invalid_start_up_value() -> None:
    """A bad --ros-args value stops the node at start-up with the value named (exit status 2)."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, ROS_DOMAIN_ID=str(72 + os.getpid() % 20))
    done = subprocess.run(
        [sys.executable, "-m", "hand_recon_ros.ros.node", "--ros-args", "-p", "image_transport:=theora"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "theora" in done.stderr + done.stdout


@pytest.mark.parametrize("doc", ["docs/ros.md", "README.md"])
def test_docs_table_lists_every_parameter(doc: str) -> None:
    docs = (Path(__file__).resolve().parents[2] / doc).read_text(encoding="utf-8")
    missing = [spec.name for spec in PARAMETERS if f"| `{spec.name}` |" not in docs]
    assert not missing, f"{doc} has no row for {missing}"


def test_unreadable_params_file_exits_2_with_a_message(tmp_path: Path) -> None:
    """A --params-file that cannot be read is named in one message and the exit status is 2 (no traceback)."""
    import os
    import subprocess
    import sys

    missing = tmp_path / "nope.yaml"
    env = dict(os.environ, ROS_DOMAIN_ID=str(92 + os.getpid() % 8))
    done = subprocess.run(
        [sys.executable, "-m", "hand_recon_ros.ros.node", "--ros-args", "--params-file", str(missing)],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "nope.yaml" in done.stderr
    assert "Traceback" not in done.stderr
