"""Both package.xml files parse with catkin_pkg and every Python import of hand_recon_ros is declared."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import catkin_pkg.package as catkin_pkg_package  # noqa: E402  (requirements/ros*.txt: never skipped)
import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE_DIR = REPO / "hand_recon_ros"
SOURCE_DIR = PACKAGE_DIR / "hand_recon_ros"

# Python module → rosdep key (exec_depend in package.xml) for modules rosdep provides.
ROSDEP_KEYS = {
    "numpy": "python3-numpy",
    "cv2": "python3-opencv",
    "scipy": "python3-scipy",
    "yaml": "python3-yaml",
    "tqdm": "python3-tqdm",
    "rclpy": "rclpy",
    "tf2_ros": "tf2_ros",
    "launch": "launch",
    "launch_ros": "launch_ros",
    "ament_index_python": "ament_index_python",
    "builtin_interfaces": "builtin_interfaces",
    "rcl_interfaces": "rcl_interfaces",
}
# Python module → pip distribution for modules only pip provides (must be in a requirements file).
PIP_NAMES = {
    "onnxruntime": "onnxruntime",
    "onnx": "onnx",
    "tflite": "tflite",
    "torch": "torch",
    "rosbags": "rosbags",
    "tensorrt": "tensorrt",
    "pycuda": "pycuda",
    "mcap": "mcap",
    "setuptools": "setuptools",
    # the litert backend (runtime.txt; imported lazily, so a missing wheel only makes that backend unavailable)
    "ai_edge_litert": "ai-edge-litert",
    "numba": "numba",
    "onnxconverter_common": "onnxconverter-common",  # FP16 graphs (engines/precision_graphs.py)
    # robot-hand retargeting, imported lazily by hand_recon_ros.retargeting only (requirements/teleop.txt)
    "dex_retargeting": "dex-retargeting",
}
# Test/dev-only modules must never be imported by the package itself.
FORBIDDEN_IN_PACKAGE = {"pytest", "mediapipe"}


def _imported_top_modules() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in SOURCE_DIR.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(REPO)))
    return found


def _requirement_names() -> set[str]:
    names: set[str] = set()
    for req in (REPO / "requirements").glob("*.txt"):
        for line in req.read_text(encoding="utf-8").splitlines():
            line = line.split("#")[0].strip()
            if line:
                names.add(re.split(r"[\[<>=!~ ;]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


@pytest.mark.parametrize("package", ["hand_recon_msgs", "hand_recon_ros"])
def test_package_xml_parses(package: str) -> None:
    pkg = catkin_pkg_package.parse_package(REPO / package / "package.xml")
    pkg.validate()
    assert pkg.name == package
    assert pkg.licenses == ["Apache-2.0"]


def test_python_package_has_no_unresolvable_buildtool() -> None:
    """`ament_python` is a build type, not a package: as a dependency it breaks `rosdep install`."""
    pkg = catkin_pkg_package.parse_package(PACKAGE_DIR / "package.xml")
    assert pkg.get_build_type() == "ament_python"
    assert "ament_python" not in {d.name for d in pkg.buildtool_depends + pkg.exec_depends + pkg.build_depends}


def test_msgs_package_declares_message_dependencies() -> None:
    pkg = catkin_pkg_package.parse_package(REPO / "hand_recon_msgs" / "package.xml")
    deps = {d.name for d in pkg.build_depends} | {d.name for d in pkg.exec_depends}
    assert {"std_msgs", "geometry_msgs", "shape_msgs"} <= deps
    assert "rosidl_interface_packages" in {g.name for g in pkg.member_of_groups}


def test_every_python_import_is_declared() -> None:
    pkg = catkin_pkg_package.parse_package(PACKAGE_DIR / "package.xml")
    exec_deps = {d.name for d in pkg.exec_depends}
    requirements = _requirement_names()
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    problems = []
    for module, files in sorted(_imported_top_modules().items()):
        where = ", ".join(sorted(files)[:3])
        if module in stdlib or module == "hand_recon_ros":
            continue
        if module in FORBIDDEN_IN_PACKAGE:
            problems.append(f"{module}: test-only module imported by the package ({where})")
        elif module.endswith("_msgs"):
            if module not in exec_deps:
                problems.append(f"{module}: no <exec_depend>{module}</exec_depend> ({where})")
        elif module in ROSDEP_KEYS:
            if ROSDEP_KEYS[module] not in exec_deps:
                problems.append(f"{module}: no <exec_depend>{ROSDEP_KEYS[module]}</exec_depend> ({where})")
        elif module in PIP_NAMES:
            if PIP_NAMES[module] not in requirements:
                problems.append(f"{module}: pip package {PIP_NAMES[module]} not in requirements/*.txt ({where})")
        else:
            problems.append(f"{module}: imported but not declared anywhere; add it to this test's maps ({where})")
    assert not problems, "\n".join(problems)
