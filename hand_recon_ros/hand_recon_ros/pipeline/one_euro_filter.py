"""One-Euro filter (Casiez, Roussel, Vogel, CHI 2012): a low-pass whose cut-off rises with speed. ROS-free.

Slow motion is smoothed hard (jitter gone), fast motion passes with little lag. Per element of an array
(each joint coordinate is its own 1D filter), driven by the frames' timestamps:

    alpha(fc, dt) = 1 / (1 + 1 / (2 pi fc dt))
    dx_hat = lowpass(dx/dt, alpha(d_cutoff))           # smoothed speed
    fc = min_cutoff + beta * |dx_hat|                   # cut-off grows with speed
    x_hat = lowpass(x, alpha(fc))

Units here: cut-offs in Hz, beta in Hz per (unit/s) of the signal (for joints in metres: Hz per m/s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# A gap longer than this between two samples (s) restarts the filter instead of smoothing across it.
MAX_GAP_S = 0.5
# Defaults and ranges of the node's one_euro_* parameters and `hand-recon run`'s --one-euro-* options (one table:
# min_cutoff 0 = off; beta 20 keeps a 5 cm step under ~70 ms, docs/teleop.md).
DEFAULT_MIN_CUTOFF_HZ = 0.0
DEFAULT_BETA = 20.0
DEFAULT_D_CUTOFF_HZ = 1.0
SETTING_RANGES: dict[str, tuple[float, float]] = {"min_cutoff_hz": (0.0, 100.0), "beta": (0.0, 10000.0),
                                                  "d_cutoff_hz": (0.01, 100.0)}


@dataclass(frozen=True)
class OneEuroSettings:
    """The filter's three parameters; min_cutoff_hz <= 0 switches it off (samples pass unchanged)."""

    min_cutoff_hz: float = 1.0
    beta: float = 0.0
    d_cutoff_hz: float = 1.0

    def __post_init__(self) -> None:
        for name in ("min_cutoff_hz", "beta", "d_cutoff_hz"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0.0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.min_cutoff_hz > 0.0 and self.d_cutoff_hz <= 0.0:
            raise ValueError(f"d_cutoff_hz must be > 0 while the filter is on, got {self.d_cutoff_hz!r}")

    @property
    def enabled(self) -> bool:
        """True when the filter changes its input."""
        return self.min_cutoff_hz > 0.0


def checked_settings(min_cutoff_hz: float, beta: float, d_cutoff_hz: float) -> OneEuroSettings:
    """OneEuroSettings within SETTING_RANGES (the node's and the CLI's), else ValueError naming the setting."""
    values = {"min_cutoff_hz": min_cutoff_hz, "beta": beta, "d_cutoff_hz": d_cutoff_hz}
    for name, value in values.items():
        low, high = SETTING_RANGES[name]
        if not (isinstance(value, (int, float)) and math.isfinite(value) and low <= value <= high):
            raise ValueError(f"One-Euro {name} must be within {low:g} .. {high:g}, got {value!r}")
    return OneEuroSettings(float(min_cutoff_hz), float(beta), float(d_cutoff_hz))


def smoothing_factor(cutoff_hz: np.ndarray | float, dt_s: float) -> np.ndarray | float:
    """Exponential smoothing factor alpha in (0, 1] of a first-order low-pass at ``cutoff_hz`` over ``dt_s``."""
    return 1.0 / (1.0 + 1.0 / (2.0 * math.pi * np.asarray(cutoff_hz) * dt_s))


class OneEuroFilter:
    """One-Euro filter over arrays of a fixed shape; ``filter(x, t)`` returns the smoothed array (float64)."""

    def __init__(self, settings: OneEuroSettings) -> None:
        self.settings = settings
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def reset(self) -> None:
        """Forget the history: the next sample passes unchanged."""
        self._x = self._dx = self._t = None

    def filter(self, x: np.ndarray, t_s: float) -> np.ndarray:
        """Smooth sample ``x`` taken at time ``t_s`` (seconds); a new shape, a gap or time going back restarts."""
        x = np.asarray(x, dtype=np.float64)
        s = self.settings
        if not s.enabled:
            return x.copy()
        if not np.all(np.isfinite(x)):
            return x.copy()  # not filtered, and the history is kept for the next good sample
        same_stream = self._x is not None and self._t is not None and self._x.shape == x.shape
        if same_stream and t_s == self._t:
            return self._x.copy()  # the same instant again: keep the answer
        if not same_stream or not 0.0 < t_s - self._t <= MAX_GAP_S:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t_s
            return x.copy()
        dt = t_s - self._t
        dx = (x - self._x) / dt
        self._dx = self._dx + smoothing_factor(s.d_cutoff_hz, dt) * (dx - self._dx)
        cutoff = s.min_cutoff_hz + s.beta * np.abs(self._dx)
        self._x = self._x + smoothing_factor(cutoff, dt) * (x - self._x)
        self._t = t_s
        return self._x.copy()
