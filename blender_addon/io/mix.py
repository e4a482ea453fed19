"""Mix: a stylized result's strength, chosen after the run without running it again (numpy only, no Blender).

When the add-on builds a result object, it keeps for each of the result's rows the capture's values of the
columns a run changes, from the row of the job's scene.ply the result row descends from (the engine's origin.npy:
row i of the input without detail; with detail a split Gaussian's children take their parent's row): the DC
colour always, the higher SH bands and the opacity logit where the run changed any of them. Mix m then shows,
renders and writes

    value = capture * (1 - m) + result * m

for each kept column: 0 is the capture's colours (on the result's rows and geometry), 1 the result exactly as the
run wrote it, 2 twice the change. A Gaussian's colour seen along any direction is linear in its SH coefficients,
so each view's colour is blended the same way; opacity blends as logits, so it stays in 0..1 at any m. It
approximates a run at another strength: the optimiser does not move colours along a straight line from the
capture, so Mix 0.5 is near, not equal to, a run that changed half as much (docs/quality.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..interchange.ply import OPACITY, REST_PREFIX, SH_DC
from .errors import SplatInputError

MIX_DEFAULT = 1.0
MIX_MIN, MIX_MAX = 0.0, 2.0
MIX_SOFT_MAX = 1.5


def rest_columns(names: Iterable[str]) -> list[str]:
    """The higher SH band columns (f_rest_*) among names, in their order."""
    return [name for name in names if name.startswith(REST_PREFIX)]


def mixable_groups(names: Iterable[str]) -> list[list[str]]:
    """The columns a run may change, in groups kept whole: the DC colour, the higher SH bands, the opacity."""
    names = list(names)
    groups = [[name for name in SH_DC if name in names], rest_columns(names), [OPACITY] if OPACITY in names else []]
    return [group for group in groups if group]


def read_origin(path: Path, input_count: int, output_count: int) -> np.ndarray | None:
    """The input row of each result row (origin.npy), checked against both row counts. A job folder without the
    file (an engine from before it) maps row i to row i where the counts agree, else gives None (no Mix).
    Raises SplatInputError naming the file when it is unreadable or does not fit."""
    if not path.is_file():
        return np.arange(output_count) if input_count == output_count else None
    try:
        origin = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise SplatInputError(f"{path}: not a readable NumPy array ({error})") from None
    if origin.ndim != 1 or origin.dtype.kind not in "iu" or len(origin) != output_count:
        raise SplatInputError(f"{path}: expected {output_count} whole numbers, one per stylized Gaussian (got "
                              f"{origin.dtype} {origin.shape})")
    if output_count and (origin.min() < 0 or origin.max() >= input_count):
        raise SplatInputError(f"{path}: rows outside the input's 0..{input_count - 1} "
                              f"(from {origin.min()} to {origin.max()})")
    return origin.astype(np.intp)


def capture_columns(capture: Mapping[str, np.ndarray], result: Mapping[str, np.ndarray],
                    origin: np.ndarray) -> dict[str, np.ndarray]:
    """The capture's values to keep on a result (float32, one per result row): each row takes its origin row's.
    The DC colour is always kept; the higher bands and the opacity only where the run changed a value of theirs."""
    kept: dict[str, np.ndarray] = {}
    for group in mixable_groups(name for name in result if name in capture):
        values = {name: np.ascontiguousarray(capture[name][origin], np.float32) for name in group}
        if group[0] in SH_DC or any(not np.array_equal(values[name], result[name]) for name in group):
            kept.update(values)
    return kept


def clamp_mix(value: float) -> float:
    """A mix value within MIX_MIN..MIX_MAX (a custom property can be set to anything from Python)."""
    return min(max(float(value), MIX_MIN), MIX_MAX)


def mixed_columns(columns: Mapping[str, np.ndarray], captures: Mapping[str, np.ndarray],
                  mix: float) -> dict[str, np.ndarray]:
    """columns with each kept column blended: capture * (1 - mix) + result * mix, in float32. At mix 1 the columns
    come back unchanged (bit for bit); columns without a kept capture are never changed."""
    mixed = dict(columns)
    mix = clamp_mix(mix)
    if mix == 1.0:
        return mixed
    weight, rest = np.float32(mix), np.float32(1.0 - mix)
    for name, capture in captures.items():
        if name in mixed:
            mixed[name] = (capture * rest + mixed[name].astype(np.float32, copy=False) * weight).astype(np.float32)
    return mixed


@dataclass(frozen=True)
class MixLayout:
    """What a result's Mix blends (its display node group is built for this): the DC colour always, the higher SH
    bands (``rest``, per colour channel) and the opacity where kept."""

    rest: int
    opacity: bool

    @classmethod
    def of(cls, captured: Iterable[str]) -> MixLayout:
        """The layout of a result keeping the capture columns ``captured`` (PLY names)."""
        captured = list(captured)
        return cls(len(rest_columns(captured)) // 3, OPACITY in captured)
