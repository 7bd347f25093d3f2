"""Load the user's MANO_RIGHT.pkl / MANO_LEFT.pkl without chumpy (the files pickle chumpy objects).

A custom ``pickle.Unpickler.find_class`` maps every ``chumpy.*`` class to a stub that keeps the pickled state,
and refuses every other global except the numpy/SciPy ones a MANO file needs (a pickle can run any code);
the arrays are read out of it (chumpy's ``Ch`` keeps its value in the state's ``x``). Old SciPy sparse module
paths (``scipy.sparse.csc``) are mapped to the current ones. MANO files cannot be shipped with the project; the
user points ``mano_dir`` at a folder holding them.
"""

from __future__ import annotations

import importlib
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MANO_FILES: dict[str, str] = {"right": "MANO_RIGHT.pkl", "left": "MANO_LEFT.pkl"}
NUM_VERTICES = 778
NUM_FACES = 1538
NUM_MANO_JOINTS = 16
NUM_BETAS = 10
# Vertex ids used as fingertips (thumb, index, middle, ring, pinky), the convention of manopth / InterHand2.6M.
FINGERTIP_VERTICES: tuple[int, ...] = (745, 317, 444, 556, 673)


class MANOLoadError(RuntimeError):
    """A MANO folder or file that cannot be used; the message names the file and the problem."""


class ChumpyStub:
    """Stands in for any chumpy class while unpickling: keeps the pickled state, never runs chumpy code."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Accept and ignore constructor arguments (pickle may call ``cls.__new__`` or ``cls()``)."""
        self._state: Any = None

    def __setstate__(self, state: Any) -> None:
        """Keep the pickled state (a dict for chumpy's Ch)."""
        self._state = state

    def array(self) -> np.ndarray:
        """The wrapped numpy array (chumpy's ``x``, else the first array in the state)."""
        state = self._state
        if isinstance(state, tuple) and state and isinstance(state[-1], dict):
            state = state[-1]
        if isinstance(state, dict):
            if "x" in state:
                return np.asarray(to_array(state["x"]))
            for value in state.values():
                if isinstance(value, (np.ndarray, ChumpyStub)):
                    return np.asarray(to_array(value))
        if isinstance(state, np.ndarray):
            return state
        raise MANOLoadError(f"cannot find the array inside a pickled chumpy object (state {type(state).__name__})")


def to_array(value: Any) -> np.ndarray:
    """A dense float/int numpy array from a numpy array, a chumpy stub or a SciPy sparse matrix."""
    if isinstance(value, ChumpyStub):
        return value.array()
    if hasattr(value, "toarray"):
        return np.asarray(value.toarray())
    return np.asarray(value)


# The only globals a MANO pickle needs (Python 2 and 3 spellings), besides chumpy.* (stubbed) and the SciPy
# sparse matrix classes below: anything else (os.system, builtins.eval, ...) is refused before it is imported.
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset({
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
    ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"),
    ("__builtin__", "object"), ("builtins", "object"),
    ("__builtin__", "set"), ("builtins", "set"), ("__builtin__", "frozenset"), ("builtins", "frozenset"),
})
ALLOWED_SPARSE_CLASSES: frozenset[str] = frozenset({"csc_matrix", "csr_matrix", "coo_matrix"})


class _MANOUnpickler(pickle.Unpickler):
    """Unpickler that never imports chumpy, loads only the classes a MANO file needs, and maps moved SciPy modules."""

    def find_class(self, module: str, name: str) -> Any:
        """Chumpy classes → ChumpyStub; numpy/SciPy sparse classes; anything else → UnpicklingError naming it."""
        if module == "chumpy" or module.startswith("chumpy."):
            return ChumpyStub
        if module.startswith("scipy.sparse") and name in ALLOWED_SPARSE_CLASSES:
            try:
                return super().find_class(module, name)
            except (ImportError, AttributeError):  # an old module path (scipy.sparse.csc)
                return getattr(importlib.import_module("scipy.sparse"), name)
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a MANO file holds only numpy arrays, SciPy sparse matrices "
                "and chumpy objects"
            )
        return super().find_class(module, name)


@dataclass
class MANOModel:
    """Arrays of one MANO hand (float64): template (778, 3), faces (1538, 3), joint regressor (16, 778), skinning
    weights (778, 16), pose blend shapes (778, 3, 135), shape blend shapes (778, 3, 10), parents (16,), PCA pose
    basis (45, 45) and mean (45,)."""

    side: str
    v_template: np.ndarray
    faces: np.ndarray
    j_regressor: np.ndarray
    weights: np.ndarray
    posedirs: np.ndarray
    shapedirs: np.ndarray
    parents: np.ndarray
    hands_components: np.ndarray
    hands_mean: np.ndarray


def _field(data: dict, key: str, shape: tuple[int, ...], path: Path) -> np.ndarray:
    """data[key] as an array of ``shape`` or MANOLoadError naming the file, key and shape."""
    if key not in data:
        raise MANOLoadError(f"{path}: missing '{key}'")
    array = to_array(data[key])
    if array.shape != shape:
        raise MANOLoadError(f"{path}: '{key}' must have shape {shape}, got {array.shape}")
    return array


def load_mano_file(path: str | Path, side: str) -> MANOModel:
    """Read one MANO pickle (Python-2 pickles included) into a MANOModel."""
    path = Path(path)
    if not path.is_file():
        raise MANOLoadError(f"MANO file not found: {path}")
    try:
        with path.open("rb") as stream:
            data = _MANOUnpickler(stream, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ImportError, AttributeError, ValueError) as exc:
        raise MANOLoadError(f"{path}: not a readable MANO pickle ({exc})") from exc
    if not isinstance(data, dict):
        raise MANOLoadError(f"{path}: expected a dict of arrays, got {type(data).__name__}")
    kintree = _field(data, "kintree_table", (2, NUM_MANO_JOINTS), path)
    parents = kintree[0].astype(np.int64)
    parents[0] = -1
    n_pose = (NUM_MANO_JOINTS - 1) * 9
    components = _field(data, "hands_components", (45, 45), path) if "hands_components" in data else np.eye(45)
    mean = _field(data, "hands_mean", (45,), path) if "hands_mean" in data else np.zeros(45)
    return MANOModel(
        side=side,
        v_template=_field(data, "v_template", (NUM_VERTICES, 3), path).astype(np.float64),
        faces=_field(data, "f", (NUM_FACES, 3), path).astype(np.int32),
        j_regressor=_field(data, "J_regressor", (NUM_MANO_JOINTS, NUM_VERTICES), path).astype(np.float64),
        weights=_field(data, "weights", (NUM_VERTICES, NUM_MANO_JOINTS), path).astype(np.float64),
        posedirs=_field(data, "posedirs", (NUM_VERTICES, 3, n_pose), path).astype(np.float64),
        shapedirs=_field(data, "shapedirs", (NUM_VERTICES, 3, NUM_BETAS), path).astype(np.float64),
        parents=parents,
        hands_components=components.astype(np.float64),
        hands_mean=mean.astype(np.float64),
    )


def fix_left_shapedirs(left: MANOModel, right: MANOModel | None) -> None:
    """The known MANO_LEFT bug: its shapedirs x-components carry the right hand's sign; flip them (in place).

    With the right model at hand the flip is applied only when the left x-components equal the right's (the
    buggy release), as smplx does; without it the flip is always applied.
    """
    if right is not None and np.abs(left.shapedirs[:, 0, :] - right.shapedirs[:, 0, :]).sum() >= 1.0:
        return
    left.shapedirs[:, 0, :] *= -1.0


def load_mano_models(folder: str | Path) -> dict[str, MANOModel]:
    """MANO models found in ``folder`` by side ({'right': ..., 'left': ...}); MANOLoadError when none is there."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise MANOLoadError(f"MANO folder not found: {folder}")
    models = {side: load_mano_file(folder / name, side) for side, name in MANO_FILES.items()
              if (folder / name).is_file()}
    if not models:
        raise MANOLoadError(f"no {' or '.join(MANO_FILES.values())} in {folder}")
    if "left" in models:
        fix_left_shapedirs(models["left"], models.get("right"))
    return models
