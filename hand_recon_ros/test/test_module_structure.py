"""Module structure that must not regress: no import cycle between model_files and onnx_export."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "hand_recon_ros"


def _imported_modules(path: Path, top_level_only: bool) -> set[str]:
    """Modules a file imports (``from x import y`` gives x), at module level only or anywhere."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_onnx_export_does_not_import_model_files():
    assert "hand_recon_ros.models.model_files" not in _imported_modules(PACKAGE / "models/onnx_export.py", False)


def test_model_files_imports_onnx_export_lazily_and_shares_the_key_constants():
    from hand_recon_ros.models import model_files, onnx_export, onnx_format

    assert "hand_recon_ros.models.onnx_export" not in _imported_modules(PACKAGE / "models/model_files.py", True)
    assert model_files.EXPORTER_VERSION == onnx_export.EXPORTER_VERSION == onnx_format.EXPORTER_VERSION
    assert model_files.ONNX_OPSET == onnx_export.ONNX_OPSET == onnx_format.ONNX_OPSET
