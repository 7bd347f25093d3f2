"""launch/hand_recon_lifecycle.launch.py: parses without `launch`, shares the plain file's arguments, autostart."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1]
LAUNCH_FILE = PACKAGE_DIR / "launch" / "hand_recon_lifecycle.launch.py"


@pytest.fixture(scope="module")
def launch_module():
    spec = importlib.util.spec_from_file_location("hand_recon_lifecycle_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_launch_packages_are_imported_lazily_and_the_lifecycle_node_is_used() -> None:
    tree = ast.parse(LAUNCH_FILE.read_text(encoding="utf-8"))
    top = {getattr(n, "module", None) or n.names[0].name for n in tree.body
           if isinstance(n, (ast.Import, ast.ImportFrom))}
    assert not {m for m in top if m and m.split(".")[0] in ("launch", "launch_ros", "lifecycle_msgs")}
    inner = {(n.module, a.name) for f in tree.body if isinstance(f, ast.FunctionDef)
             for n in ast.walk(f) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert ("launch_ros.actions", "LifecycleNode") in inner
    assert ("launch_ros.events.lifecycle", "ChangeState") in inner
    assert ("launch_ros.event_handlers", "OnStateTransition") in inner
    executables = [kw.value.value for n in ast.walk(tree) if isinstance(n, ast.Call) for kw in n.keywords
                   if kw.arg == "executable" and isinstance(kw.value, ast.Constant)]
    assert executables == ["hand_recon_lifecycle_node"]


def test_arguments_are_the_plain_launch_files(launch_module) -> None:
    plain = launch_module.plain_launch_module()
    assert plain.PARAMETER_ARGUMENTS and plain.REMAP_ARGUMENTS
    assert plain.parameter_overrides({"max_hands": "1", "backend": ""}) == {"max_hands": 1}


def test_autostart_argument(launch_module) -> None:
    assert launch_module.autostart_enabled("True") and not launch_module.autostart_enabled("false")
    with pytest.raises(ValueError, match="autostart must be true or false, got 'maybe'"):
        launch_module.autostart_enabled("maybe")


def test_lifecycle_console_script_is_declared() -> None:
    setup = (PACKAGE_DIR / "setup.py").read_text(encoding="utf-8")
    assert '"hand_recon_lifecycle_node = hand_recon_ros.ros.lifecycle_node:main"' in setup
