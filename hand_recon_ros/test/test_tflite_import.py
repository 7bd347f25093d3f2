"""TFLite -> torch importer: parity with ai-edge-litert on every output (random and real photos), errors, ops."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from hand_recon_ros.models import model_files as mf
from hand_recon_ros.models import tflite_ops as ops
from hand_recon_ros.models.tflite_import import (
    TFLiteImportError,
    UnsupportedOpError,
    build_module,
    invoke_litert,
    load_tflite_module,
    make_litert_interpreter,
)

# Parity tolerance, torch vs LiteRT (both float32, fp16 weights dequantized identically): |a - b| <= ATOL + RTOL *
# max|LiteRT output|. Measured max abs error (2 cores, random inputs): palm Identity 1.7e-4 (values up to ~130),
# Identity_1 4e-5; landmark Identity 1.5e-4 (values up to ~220), Identity_1..3 <= 1e-6.
PARITY_ATOL = 1e-4
PARITY_RTOL = 2e-5
GRAPHS = ("palm_detection_full", "hand_landmark_full", "palm_detection_lite", "hand_landmark_lite")
EXPECTED_OUTPUTS = {
    "palm_detection": {"Identity": (2016, 18), "Identity_1": (2016, 1)},
    "hand_landmark": {"Identity": (63,), "Identity_1": (1,), "Identity_2": (1,), "Identity_3": (63,)},
}


@pytest.fixture(scope="module")
def tflite_paths() -> dict[str, Path]:
    return mf.fetch_tflite(quiet=True)


@pytest.fixture(scope="module")
def modules(tflite_paths: dict[str, Path]) -> dict[str, torch.nn.Module]:
    return {name: load_tflite_module(tflite_paths[name]) for name in GRAPHS}


def _assert_parity(ours: dict[str, np.ndarray], ref: dict[str, np.ndarray], label: str) -> None:
    assert set(ours) == set(ref), label
    for name, expected in ref.items():
        assert ours[name].shape == expected.shape, f"{label} {name}"
        err = float(np.abs(ours[name] - expected).max())
        tol = PARITY_ATOL + PARITY_RTOL * float(np.abs(expected).max())
        assert err <= tol, f"{label} {name}: max abs error {err:.3g} > tolerance {tol:.3g}"


def _photo_inputs(shared_data_dir: Path, size: int) -> np.ndarray:
    """Real-photo inputs: the whole image and its left/right halves, resized to size x size, RGB in [0, 1]."""
    paths = [shared_data_dir / "woman_hands.jpg", *sorted((shared_data_dir / "interhand2.6m").glob("*.jpg"))]
    crops = []
    for path in paths:
        image = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        w = image.shape[1]
        for crop in (image, image[:, : w // 2], image[:, w // 2 :]):
            crops.append(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA))
    return np.stack(crops).astype(np.float32) / 255.0


@pytest.mark.parametrize("graph", GRAPHS)
def test_parity_random_inputs_every_output(graph: str, modules: dict, tflite_paths: dict) -> None:
    module = modules[graph]
    rng = np.random.default_rng(7)
    x = rng.random((3, *module.input_shape[1:]), dtype=np.float32)
    ours = module.run_numpy(x)
    ref = invoke_litert(make_litert_interpreter(tflite_paths[graph]), x)
    kind = graph.rsplit("_", 1)[0]
    assert {k: v.shape[1:] for k, v in ours.items()} == EXPECTED_OUTPUTS[kind]
    _assert_parity(ours, ref, graph)


@pytest.mark.parametrize("graph", GRAPHS)
def test_parity_real_photos_every_output(graph: str, modules: dict, tflite_paths: dict, shared_data_dir: Path) -> None:
    module = modules[graph]
    x = _photo_inputs(shared_data_dir, module.input_shape[1])
    ours = module.run_numpy(x)
    ref = invoke_litert(make_litert_interpreter(tflite_paths[graph]), x)
    _assert_parity(ours, ref, f"{graph} on photos")
    if graph.startswith("palm"):  # the photos contain hands: some anchors must fire, as in LiteRT
        assert (ref["Identity_1"] > 0).any() and ((ours["Identity_1"] > 0) == (ref["Identity_1"] > 0)).all()


def test_batch_is_dynamic_and_items_independent(modules: dict) -> None:
    module = modules["hand_landmark_full"]
    x = np.random.default_rng(3).random((3, 224, 224, 3), dtype=np.float32)
    batched = module.run_numpy(x)
    single = module.run_numpy(x[1:2])
    for name in module.output_names:
        np.testing.assert_allclose(batched[name][1:2], single[name], rtol=1e-5, atol=1e-5)


def test_output_names_and_wrong_input_shape(modules: dict) -> None:
    palm = modules["palm_detection_full"]
    assert palm.output_names == ["Identity", "Identity_1"] and palm.input_shape == (1, 192, 192, 3)
    with pytest.raises(ValueError, match=r"input 'input_1' must have shape \(N, 192, 192, 3\)"):
        palm(torch.zeros(1, 224, 224, 3))


def _patch_opcode(data: bytes, old_code: int, new_code: int) -> bytes:
    """Rewrite one entry of the flatbuffer's operator-code table in memory (both code fields)."""
    import tflite

    buf = bytearray(data)
    model = tflite.Model.GetRootAsModel(data, 0)
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) != old_code:
            continue
        deprecated_at, builtin_at = code._tab.Offset(4), code._tab.Offset(10)
        assert deprecated_at or builtin_at
        if deprecated_at:
            buf[code._tab.Pos + deprecated_at] = new_code
        if builtin_at:
            buf[code._tab.Pos + builtin_at : code._tab.Pos + builtin_at + 4] = new_code.to_bytes(4, "little")
        return bytes(buf)
    raise AssertionError(f"op code {old_code} not in the graph")


def test_unsupported_op_is_named(tflite_paths: dict) -> None:
    import tflite

    data = tflite_paths["hand_landmark_full"].read_bytes()
    mutated = _patch_opcode(data, tflite.BuiltinOperator.LOGISTIC, tflite.BuiltinOperator.SQUARED_DIFFERENCE)
    with pytest.raises(UnsupportedOpError, match=r"landmark\.tflite: op #\d+ SQUARED_DIFFERENCE is not supported"):
        build_module(mutated, graph_name="landmark.tflite")


def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 3)
    with pytest.raises(TFLiteImportError, match="bad.tflite"):
        load_tflite_module(bad)
    with pytest.raises(TFLiteImportError, match="cannot read TFLite file"):
        load_tflite_module(tmp_path / "missing.tflite")


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "expected"),
    [(192, 5, 2, (1, 2)), (192, 3, 2, (0, 1)), (96, 5, 1, (2, 2)), (7, 3, 2, (1, 1)), (4, 1, 2, (0, 0))],
)
def test_same_padding_puts_the_extra_pixel_after(size: int, kernel: int, stride: int, expected: tuple) -> None:
    assert ops.same_padding(size, kernel, stride, 1) == expected


def _tf_bilinear(x: np.ndarray, out_size: int, align_corners: bool, half_pixel: bool) -> np.ndarray:
    """TensorFlow's resize_bilinear along both axes of an (H, W) array, written from its definition."""
    in_size = x.shape[0]
    if align_corners and out_size > 1:
        scale = (in_size - 1) / (out_size - 1)
    else:
        scale = in_size / out_size
    out = np.zeros((out_size, out_size), np.float64)
    for i in range(out_size):
        for j in range(out_size):
            src = [(d + 0.5) * scale - 0.5 if half_pixel else d * scale for d in (i, j)]
            lo = [max(int(np.floor(s)), 0) for s in src]
            hi = [min(low + 1, in_size - 1) for low in lo]
            frac = [s - np.floor(s) if s > 0 else 0.0 for s in src]
            top = x[lo[0], lo[1]] * (1 - frac[1]) + x[lo[0], hi[1]] * frac[1]
            bottom = x[hi[0], lo[1]] * (1 - frac[1]) + x[hi[0], hi[1]] * frac[1]
            out[i, j] = top * (1 - frac[0]) + bottom * frac[0]
    return out


@pytest.mark.parametrize(("align", "half"), [(False, True), (True, False), (False, False)])
def test_resize_bilinear_modes_match_tensorflow(align: bool, half: bool) -> None:
    x = np.random.default_rng(1).random((5, 5)).astype(np.float32)
    layer = ops.ResizeBilinear("RESIZE_BILINEAR", [0], 1, (5, 5), (10, 10), align, half)
    ours = layer(torch.from_numpy(x)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(ours, _tf_bilinear(x, 10, align, half), atol=1e-6)
