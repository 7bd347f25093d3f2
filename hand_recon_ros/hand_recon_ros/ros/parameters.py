"""The node's parameters: one table with defaults, descriptions, ranges, liveness and PipelineConfig mapping.

The same table drives the declarations (ParameterDescriptor with ranges), validation (at start-up and on
every live change, refusing with the value named), config/hand_recon.yaml, the launch file and docs/ros.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hand_recon_ros.pipeline import one_euro_filter as one_euro
from hand_recon_ros.pipeline.types import ASSUMED_HFOV_DEG


class ParameterValueError(ValueError):
    """A parameter value the node cannot use; the message names the parameter and the value."""


@dataclass(frozen=True)
class ParamSpec:
    """One node parameter: name, default (its type is the parameter type), description and constraints."""

    name: str
    default: Any
    description: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    live: bool = False  # may change while the node runs
    pipeline_field: str | None = None  # PipelineConfig field it maps to


PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("image_transport", "raw", "Subscribe to 'image' (raw) or 'image/compressed' (compressed).",
              choices=("raw", "compressed")),
    ParamSpec("mono16_bits", 0, "Significant bits of mono16/16UC1 images (e.g. 12 for a 12-bit sensor): the top 8 "
              "of them are used; 0 = read from each image (highest set bit, at least 8).", minimum=0, maximum=16,
              live=True),
    ParamSpec("backend", "litert", "Inference backend: litert, onnxruntime-cpu, tensorrt, onnxruntime-cuda, "
              "onnxruntime-tensorrt, torch or auto.", pipeline_field="backend"),
    ParamSpec("precision", "auto", "Network precision: auto (fp16 on TensorRT, fp32 on CPU/CUDA), fp32, fp16 or "
              "int8 (needs calib_dir).", choices=("auto", "fp32", "fp16", "int8"), pipeline_field="precision"),
    ParamSpec("calib_dir", "", "Folder of calibration images for precision int8 ('' = none).",
              pipeline_field="calib_dir"),
    ParamSpec("model_variant", "full", "Palm/landmark model size.", choices=("full", "lite"),
              pipeline_field="model_variant"),
    ParamSpec("models_dir", "", "Folder of the model files ('' = $HAND_RECON_CACHE_DIR, else "
              "~/.cache/hand_recon_ros).", pipeline_field="models_dir"),
    ParamSpec("engine_cache_dir", "", "Folder for built engines and precision graphs only ('' = engines/ beside the "
              "model files). Set alone (models_dir ''), it is read as before: the model folder (deprecated).",
              pipeline_field="engine_cache_dir"),
    ParamSpec("fetch_models", False, "Allow downloading and converting missing model files at start-up (needs "
              "PyPI); false: missing files are an error naming 'hand-recon models fetch'."),
    ParamSpec("mano_dir", "", "Folder holding the MANO model files ('' = no MANO layer).",
              pipeline_field="mano_dir"),
    ParamSpec("reconstructor", "landmarks", "2D + 3D per hand: 'landmarks' (MediaPipe landmark network) or "
              "'learned' (the two-hand network in learned_model).", choices=("landmarks", "learned"),
              pipeline_field="reconstructor"),
    ParamSpec("learned_model", "", "ONNX file from `hand-recon export` for reconstructor 'learned' ('' = none).",
              pipeline_field="learned_model"),
    ParamSpec("intra_op_threads", 0, "CPU threads per inference (0 = runtime default).", minimum=0, maximum=64,
              pipeline_field="intra_op_threads"),
    ParamSpec("opencv_threads", 1, "OpenCV threads, process-wide (0 = leave OpenCV's setting; 1: its idle workers "
              "would spin next to the network).", minimum=0, maximum=64, pipeline_field="opencv_threads"),
    ParamSpec("refine_3d", True, "Refine metric 3D by fitting to the 2D keypoints.", pipeline_field="refine_3d"),
    ParamSpec("mode", "video", "'video' tracks hands between frames, 'image' detects on every frame.",
              choices=("image", "video"), live=True, pipeline_field="mode"),
    ParamSpec("max_hands", 2, "Maximum number of hands reported.", minimum=1, maximum=2, live=True,
              pipeline_field="max_hands"),
    ParamSpec("min_detection_score", 0.5, "Minimum palm detection score.", minimum=0.0, maximum=1.0, live=True,
              pipeline_field="min_detection_score"),
    ParamSpec("min_presence_score", 0.5, "Minimum hand presence score to keep a tracked hand.", minimum=0.0,
              maximum=1.0, live=True, pipeline_field="min_presence_score"),
    ParamSpec("mirrored", False, "Input is mirrored (selfie view): swap left/right.", live=True,
              pipeline_field="mirrored"),
    ParamSpec("mesh", False, "Compute and publish hand meshes (HandArray and TRIANGLE_LIST markers).", live=True,
              pipeline_field="mesh"),
    ParamSpec("smoothing", 0.5, "Temporal smoothing of 3D joints: 0 none .. 1 heavy.", minimum=0.0, maximum=1.0,
              live=True, pipeline_field="smoothing"),
    ParamSpec("one_euro_min_cutoff_hz", one_euro.DEFAULT_MIN_CUTOFF_HZ, "One-Euro filter on the published 3D "
              "joints and wrist pose: cut-off at rest (Hz; lower = smoother when still). 0 = filter off.",
              *one_euro.SETTING_RANGES["min_cutoff_hz"], live=True),
    ParamSpec("one_euro_beta", one_euro.DEFAULT_BETA, "One-Euro filter: how fast the cut-off rises with speed (Hz "
              "per m/s; higher = less lag on fast moves).", *one_euro.SETTING_RANGES["beta"], live=True),
    ParamSpec("one_euro_d_cutoff_hz", one_euro.DEFAULT_D_CUTOFF_HZ, "One-Euro filter: cut-off of its speed "
              "estimate (Hz).", *one_euro.SETTING_RANGES["d_cutoff_hz"], live=True),
    ParamSpec("roi_proposals", True, "When fewer than max_hands hands are found, look again (proposal_source) and "
              "let the landmark network accept hands the palm detector missed (dim, noisy, close-up, interacting "
              "hands).", live=True,
              pipeline_field="roi_proposals"),
    ParamSpec("proposal_interval_frames", 30, "Video mode: run the ROI proposals at most every N frames while a "
              "hand is missing.", minimum=1, maximum=300, live=True, pipeline_field="proposal_interval_frames"),
    ParamSpec("proposal_source", "palm", "Where the ROI proposals come from: 'palm' (the palm detector on a "
              "normalised look at the frame and two tiles, proposal_crops landmark crops judged: ~4 crops in all) or "
              "'grid' (generic crops over the image, ~40 landmark crops, ~4x slower; docs/pipeline.md).",
              choices=("grid", "palm"),
              live=True, pipeline_field="proposal_source"),
    ParamSpec("proposal_crops", 2, "Source 'palm': landmark crops judged in the first proposal pass (at least the "
              "missing-hand count).", minimum=1,
              maximum=32, live=True, pipeline_field="proposal_crops"),
    ParamSpec("input_rectified", False, "Images are rectified (an image_rect topic): use CameraInfo's P and no "
              "undistortion; false: K and D by distortion_model (plumb_bob, rational_polynomial, equidistant)."),
    ParamSpec("use_depth", "auto", "Place hands with the registered depth image on 'depth' (16UC1 or 32FC1): 'auto' "
              "uses it when it arrives, 'on' also warns while it is missing, 'off' does not subscribe.",
              choices=("auto", "on", "off")),
    ParamSpec("depth_max_age_s", 0.1, "Largest stamp difference between a colour frame and the depth frame paired "
              "with it (s); further apart: monocular placement for that frame.", minimum=0.0, maximum=5.0, live=True),
    ParamSpec("depth_scale", 0.001, "Metres per unit of 16UC1 depth (0.001: millimetres); 32FC1 is metres.",
              minimum=1e-6, maximum=1.0),
    ParamSpec("hand_length_m", 0.0, "The user's hand length, wrist to middle fingertip (m); 0 = adult prior. "
              "Monocular depth scales with it. Given (> 0), it is used as it is; with depth and 0, each track "
              "measures its own.", minimum=0.0, maximum=0.3, pipeline_field="hand_length_m"),
    ParamSpec("assumed_hfov_deg", ASSUMED_HFOV_DEG, "Horizontal field of view assumed while no CameraInfo "
              "arrives (degrees).", minimum=10.0, maximum=170.0, live=True),
    ParamSpec("marker_lifetime_s", 0.5, "Lifetime of RViz markers (s, 0 = forever).", minimum=0.0,
              maximum=60.0, live=True),
    ParamSpec("publish_tf", True, "Broadcast <tf_prefix>left_wrist / right_wrist frames (needs tf2_ros)."),
    ParamSpec("tf_prefix", "hand_", "Prefix of the wrist TF frame names."),
    ParamSpec("retargeting", "", "Robot-hand retargeting (dex-retargeting): comma-separated configs, shipped names "
              "(allegro_hand_right, leap_hand_left, ...) or YAML paths; a name ending in _left/_right serves that "
              "side. '' = off."),
    ParamSpec("urdf_dir", "", "Folder holding the robot URDFs the retargeting configs name."),
    ParamSpec("no_image_timeout_s", 5.0, "Diagnostics WARN after this long without an image (s).", minimum=0.1,
              maximum=3600.0, live=True),
)
PARAMETERS_BY_NAME: dict[str, ParamSpec] = {spec.name: spec for spec in PARAMETERS}
# PipelineConfig fields that are paths: the parameter's '' is None there.
PATH_FIELDS: frozenset[str] = frozenset({"models_dir", "engine_cache_dir", "mano_dir", "calib_dir", "learned_model"})


def validate_value(name: str, value: Any) -> Any:
    """Return ``value`` converted to the parameter's type, or raise ParameterValueError naming name and value."""
    spec = PARAMETERS_BY_NAME.get(name)
    if spec is None:
        raise ParameterValueError(f"unknown parameter '{name}'")
    kind = type(spec.default)
    if kind is str and isinstance(value, bool) and {"on", "off"} <= set(spec.choices):
        value = "on" if value else "off"  # YAML 1.1 (ROS parameter files, -p name:=on) reads on/off as booleans
    if kind is bool:
        if not isinstance(value, bool):
            raise ParameterValueError(f"{name} must be true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParameterValueError(f"{name} must be an integer, got {value!r}")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ParameterValueError(f"{name} must be a finite number, got {value!r}")
        value = float(value)
    elif kind is str:
        if not isinstance(value, str):
            raise ParameterValueError(f"{name} must be a string, got {value!r}")
        if spec.choices and value not in spec.choices:
            raise ParameterValueError(f"{name} must be one of {', '.join(spec.choices)}, got {value!r}")
        if name == "backend":
            from hand_recon_ros.engines.base import BackendError
            from hand_recon_ros.engines.registry import canonical_backend_name

            try:
                canonical_backend_name(value)
            except BackendError as exc:
                raise ParameterValueError(f"backend: {exc}") from exc
        return value
    if spec.minimum is not None and value < spec.minimum:
        raise ParameterValueError(f"{name} must be >= {spec.minimum}, got {value!r}")
    if spec.maximum is not None and value > spec.maximum:
        raise ParameterValueError(f"{name} must be <= {spec.maximum}, got {value!r}")
    return value


def descriptor(spec: ParamSpec) -> Any:
    """The rcl_interfaces ParameterDescriptor for ``spec`` (type, description, range, read-only when not live)."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

    kind = type(spec.default)
    types = {
        bool: ParameterType.PARAMETER_BOOL,
        int: ParameterType.PARAMETER_INTEGER,
        float: ParameterType.PARAMETER_DOUBLE,
        str: ParameterType.PARAMETER_STRING,
    }
    text = spec.description
    if spec.choices:
        text += f" One of: {', '.join(spec.choices)}."
    if not spec.live:
        text += " Read at start-up."
    desc = ParameterDescriptor(name=spec.name, type=types[kind], description=text, read_only=not spec.live)
    if kind is str and {"on", "off"} <= set(spec.choices):
        desc.dynamic_typing = True  # `on`/`off` arrive as booleans from YAML; validate_value maps them back
    if spec.choices:
        desc.additional_constraints = f"one of: {', '.join(spec.choices)}"
    if kind is float and spec.minimum is not None and spec.maximum is not None:
        desc.floating_point_range = [FloatingPointRange(from_value=float(spec.minimum),
                                                        to_value=float(spec.maximum), step=0.0)]
    if kind is int and spec.minimum is not None and spec.maximum is not None:
        desc.integer_range = [IntegerRange(from_value=int(spec.minimum), to_value=int(spec.maximum), step=1)]
    return desc


def declare_parameters(node: Any) -> dict[str, Any]:
    """Declare every parameter on ``node``; return the validated values (ParameterValueError on a bad one)."""
    values: dict[str, Any] = {}
    for spec in PARAMETERS:
        try:
            parameter = node.declare_parameter(spec.name, spec.default, descriptor(spec))
        except Exception as exc:  # rclpy's InvalidParameterValueException / type mismatch from overrides
            raise ParameterValueError(f"parameter {spec.name}: {exc}") from exc
        values[spec.name] = validate_value(spec.name, parameter.value)
    return values


def pipeline_settings(values: dict[str, Any], available_fields: tuple[str, ...]) -> dict[str, Any]:
    """PipelineConfig keyword arguments from node parameter values ('' paths become None).

    Parameters whose PipelineConfig field does not exist (``available_fields``) are left out.
    """
    settings: dict[str, Any] = {}
    for spec in PARAMETERS:
        if spec.pipeline_field is None or spec.pipeline_field not in available_fields or spec.name not in values:
            continue
        value = values[spec.name]
        if spec.pipeline_field in PATH_FIELDS and value == "":
            value = None
        settings[spec.pipeline_field] = value
    if engine_cache_dir_as_models_dir(values) and "models_dir" in available_fields:
        settings["models_dir"], settings["engine_cache_dir"] = values["engine_cache_dir"], None
    return settings


def engine_cache_dir_as_models_dir(values: dict[str, Any]) -> bool:
    """True when ``engine_cache_dir`` is set without ``models_dir``: the deprecated use, read as the model folder."""
    return bool(values.get("engine_cache_dir")) and "models_dir" in values and not values["models_dir"]


def deprecation_warnings(values: dict[str, Any]) -> list[str]:
    """One message per deprecated parameter use in ``values`` (the node logs each once at start-up)."""
    if not engine_cache_dir_as_models_dir(values):
        return []
    return [f"engine_cache_dir:={values['engine_cache_dir']} without models_dir is read as the model folder "
            "(deprecated): set models_dir for the model files and engine_cache_dir only for engines"]
