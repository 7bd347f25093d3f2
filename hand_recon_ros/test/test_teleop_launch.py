"""launch/teleop.launch.py: parses without `launch`, its settings are valid node parameters, its topics are the
node's inputs, and its default retargeting configs load on the real Allegro URDFs."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

from hand_recon_ros.ros.parameters import PARAMETERS_BY_NAME, validate_value
from hand_recon_ros.ros.teleop_outputs import parse_config_list

sys.path.insert(0, str(Path(__file__).parent))
from test_retargeting import robots_dir  # noqa: E402

LAUNCH_FILE = Path(__file__).resolve().parents[1] / "launch" / "teleop.launch.py"
NODE_INPUTS = {"image", "camera_info", "depth"}


@pytest.fixture(scope="module")
def launch_module():
    spec = importlib.util.spec_from_file_location("teleop_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_launch_is_imported_lazily() -> None:
    tree = ast.parse(LAUNCH_FILE.read_text(encoding="utf-8"))
    top = {getattr(n, "module", None) or n.names[0].name for n in tree.body if isinstance(n, (ast.Import,
                                                                                                ast.ImportFrom))}
    assert not {m for m in top if m and m.split(".")[0] in ("launch", "launch_ros", "ament_index_python")}


def test_settings_are_valid_node_parameters_with_depth_and_retargeting_on(launch_module) -> None:
    parameters = launch_module.node_parameters({})
    for name, value in parameters.items():
        assert name in PARAMETERS_BY_NAME, name
        assert validate_value(name, value) == value
    assert parameters["use_depth"] == "on"
    assert parse_config_list(parameters["retargeting"]) == ["allegro_hand_right", "allegro_hand_left"]
    assert parameters["one_euro_min_cutoff_hz"] > 0.0
    for name, _ in launch_module.PARAMETER_ARGUMENTS:
        assert name in PARAMETERS_BY_NAME, f"launch argument {name} is not a node parameter"


def test_arguments_override_with_types(launch_module) -> None:
    parameters = launch_module.node_parameters({"urdf_dir": "/robots", "hand_length_m": "0.19", "backend": ""})
    assert parameters["urdf_dir"] == "/robots" and parameters["hand_length_m"] == pytest.approx(0.19)
    assert "backend" not in parameters
    with pytest.raises(ValueError, match="hand_length_m must be a number, got 'big'"):
        launch_module.node_parameters({"hand_length_m": "big"})


def test_remaps_are_the_node_inputs(launch_module) -> None:
    assert {topic for topic, _, _ in launch_module.REMAP_ARGUMENTS} == NODE_INPUTS
    defaults = {topic: default for topic, default, _ in launch_module.REMAP_ARGUMENTS}
    assert "aligned_depth_to_color" in defaults["depth"] and defaults["image"].endswith("color/image_raw")


def test_default_retargeting_loads_on_the_allegro_urdfs(launch_module) -> None:
    from hand_recon_ros.retargeting.robot_retargeter import RobotRetargeting

    configs = parse_config_list(launch_module.node_parameters({})["retargeting"])
    retargeting = RobotRetargeting(configs, robots_dir())
    assert {side: r.urdf_path.name for side, r in retargeting.by_side.items()} == {
        "right": "allegro_hand_right.urdf", "left": "allegro_hand_left.urdf"}
