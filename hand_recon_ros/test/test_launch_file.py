"""launch/hand_recon.launch.py parses without `launch` installed and its arguments match the node's parameters."""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from hand_recon_ros.ros.parameters import PARAMETERS_BY_NAME, validate_value

PACKAGE_DIR = Path(__file__).resolve().parents[1]
LAUNCH_FILE = PACKAGE_DIR / "launch" / "hand_recon.launch.py"
CONFIG_FILE = PACKAGE_DIR / "config" / "hand_recon.yaml"
# What the issue asks the launch file to expose.
REQUIRED_PARAMETER_ARGUMENTS = {"backend", "precision", "engine_cache_dir", "mano_dir", "mirrored"}
REQUIRED_REMAPS = {"image", "camera_info"}


@pytest.fixture(scope="module")
def tree() -> ast.Module:
    return ast.parse(LAUNCH_FILE.read_text(encoding="utf-8"), filename=str(LAUNCH_FILE))


@pytest.fixture(scope="module")
def launch_module():
    """The launch file as a module: importable because launch/launch_ros are imported inside functions only."""
    spec = importlib.util.spec_from_file_location("hand_recon_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_launch_is_imported_lazily(tree: ast.Module) -> None:
    top_level = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    modules = {getattr(n, "module", None) or n.names[0].name for n in top_level}
    assert not {m for m in modules if m and m.split(".")[0] in ("launch", "launch_ros", "ament_index_python")}
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in functions
    inner = {n.module for f in functions.values() for n in ast.walk(f) if isinstance(n, ast.ImportFrom)}
    assert {"launch", "launch.actions", "launch_ros.actions"} <= inner


def test_parameter_arguments_are_node_parameters_in_the_config(launch_module) -> None:
    names = [name for name, _ in launch_module.PARAMETER_ARGUMENTS]
    assert len(names) == len(set(names))
    assert REQUIRED_PARAMETER_ARGUMENTS <= set(names)
    params = yaml.safe_load(CONFIG_FILE.read_text(encoding="utf-8"))["/**"]["ros__parameters"]
    for name in names:
        assert name in PARAMETERS_BY_NAME, f"launch argument {name} is not a node parameter"
        assert name in params, f"launch argument {name} has no default in config/hand_recon.yaml"
    for name in launch_module.BOOL_ARGUMENTS | launch_module.INT_ARGUMENTS:
        assert name in names


def test_given_arguments_override_with_the_node_types(launch_module) -> None:
    overrides = launch_module.parameter_overrides(
        {"backend": "tensorrt", "mirrored": "True", "max_hands": "1", "mesh": "", "image": "/cam/image_raw"}
    )
    assert overrides == {"backend": "tensorrt", "mirrored": True, "max_hands": 1}
    for name, value in overrides.items():
        assert validate_value(name, value) == value
    assert launch_module.parameter_overrides({}) == {}, "empty arguments keep params_file values"
    with pytest.raises(ValueError, match="mirrored must be true or false, got 'yes'"):
        launch_module.typed_value("mirrored", "yes")
    with pytest.raises(ValueError, match="max_hands must be an integer, got 'two'"):
        launch_module.typed_value("max_hands", "two")


def test_remap_arguments_are_the_node_topics(launch_module) -> None:
    remaps = launch_module.REMAP_ARGUMENTS
    assert {name for name, _, _ in remaps} >= REQUIRED_REMAPS
    assert all(name == topic for name, topic, _ in remaps), "argument names are the relative topic names"


def test_generate_launch_description_needs_launch_only_when_called(launch_module) -> None:
    try:
        from launch import LaunchDescription  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError):
            launch_module.generate_launch_description()
    else:
        pytest.skip("the ROS launch package is installed here")


@pytest.mark.parametrize(("distro", "expected"), [
    ("humble", {"FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"}),
    ("jazzy", {"FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"}),
    ("kilted", {"FASTDDS_DEFAULT_PROFILES_FILE"}),
    (None, {"FASTDDS_DEFAULT_PROFILES_FILE"}),
])
def test_the_fastdds_profile_reaches_fast_dds_2_and_3(launch_module, distro, expected) -> None:
    """Humble/Jazzy (Fast DDS 2.x) read FASTRTPS_DEFAULT_PROFILES_FILE, Kilted (3.x) FASTDDS_... (and warns on
    the old name): the launch file gives the node the names its distro reads."""
    assert set(launch_module.profile_env_vars(distro)) == expected
    assert "for name in profile_env_vars(" in LAUNCH_FILE.read_text()  # node_environment()


@pytest.mark.parametrize("name", ["hand_recon.launch.py", "hand_recon_lifecycle.launch.py", "teleop.launch.py"])
def test_every_launch_file_gives_its_node_the_distros_profile_names(name: str) -> None:
    # The lifecycle and teleop files once set only FASTDDS_DEFAULT_PROFILES_FILE, which Humble/Jazzy ignore.
    text = (PACKAGE_DIR / "launch" / name).read_text()
    assert "additional_env=" in text
    assert all("node_environment()" in line for line in text.splitlines() if "additional_env=" in line)


def test_env_sh_sets_the_profile_names_fast_dds_reads() -> None:
    """For the distro this suite runs on (the one that is set up): the names its Fast DDS reads, and only those."""
    distro = os.environ.get("ROS_DISTRO", "kilted")
    profile = os.path.join(str(PACKAGE_DIR), "config", "fastdds_shm.xml")
    clean = {k: v for k, v in os.environ.items() if "PROFILES_FILE" not in k}
    # sourced after the other distro's env.sh, as when one shell switches distros
    other = "kilted" if distro == "jazzy" else "jazzy"
    script = (f"ROS_DISTRO={other} source {PACKAGE_DIR.parent / 'env.sh'} >/dev/null 2>&1; "
              f"ROS_DISTRO={distro} source {PACKAGE_DIR.parent / 'env.sh'} && env")
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=clean)
    assert done.returncode == 0, done.stderr
    assert f"FASTDDS_DEFAULT_PROFILES_FILE={profile}" in done.stdout
    assert (f"FASTRTPS_DEFAULT_PROFILES_FILE={profile}" in done.stdout) == (distro == "jazzy")
