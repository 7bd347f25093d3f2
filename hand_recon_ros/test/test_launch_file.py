"""launch/hand_recon.launch.py parses without `launch` installed and its arguments match the node's parameters."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from hand_recon_ros.ros.parameters import PARAMETERS_BY_NAME, validate_value

LAUNCH_FILE = Path(__file__).resolve().parents[1] / "launch" / "hand_recon.launch.py"
# What the issue asks the launch file to expose.
REQUIRED_PARAMETER_ARGUMENTS = {"backend", "precision", "engine_cache_dir", "mano_dir", "mirrored"}
REQUIRED_REMAPS = {"image", "camera_info"}


@pytest.fixture(scope="module")
def tree() -> ast.Module:
    return ast.parse(LAUNCH_FILE.read_text(encoding="utf-8"), filename=str(LAUNCH_FILE))


def _constant(tree: ast.Module, name: str):
    for node in tree.body:
        targets = [node.target] if isinstance(node, ast.AnnAssign) else getattr(node, "targets", [])
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} not defined at module level in {LAUNCH_FILE.name}")


def test_launch_is_imported_lazily(tree: ast.Module) -> None:
    top_level = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    modules = {getattr(n, "module", None) or n.names[0].name for n in top_level}
    assert not {m for m in modules if m and m.split(".")[0] in ("launch", "launch_ros", "ament_index_python")}
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in functions
    inner = {n.module for n in ast.walk(functions["generate_launch_description"]) if isinstance(n, ast.ImportFrom)}
    assert {"launch", "launch_ros.actions"} <= inner


def test_parameter_arguments_are_node_parameters_with_valid_defaults(tree: ast.Module) -> None:
    arguments = _constant(tree, "PARAMETER_ARGUMENTS")
    names = [name for name, _, _ in arguments]
    assert len(names) == len(set(names))
    assert REQUIRED_PARAMETER_ARGUMENTS <= set(names)
    for name, default, description in arguments:
        assert name in PARAMETERS_BY_NAME, f"launch argument {name} is not a node parameter"
        assert description
        spec = PARAMETERS_BY_NAME[name]
        kind = type(spec.default)
        value = {"true": True, "false": False}[default] if kind is bool else kind(default)
        assert validate_value(name, value) == spec.default, f"launch default of {name} differs from the node's"


def test_remap_arguments_are_the_node_topics(tree: ast.Module) -> None:
    remaps = _constant(tree, "REMAP_ARGUMENTS")
    assert {name for name, _, _ in remaps} >= REQUIRED_REMAPS
    assert all(name == topic for name, topic, _ in remaps), "argument names are the relative topic names"
