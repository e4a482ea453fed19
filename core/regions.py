"""Regions: stylize part of a scene, given one weight in [0, 1] per Gaussian.

A Gaussian's weight r says how much of its stylised change it takes: the scene the loss sees and the result are
original + r · (optimised − original) for every optimised parameter, so r = 0 keeps the original colours
exactly and r = 1 is a plain stylization. Every Gaussian is still rendered, so unselected ones still count as
content; in object statistics the style statistics are weighted by the selection's coverage (``coverage_colours``
rendered like a colour), so the painting's statistics are matched on the selected part only.

File format (CLI ``--region FILE``): a NumPy ``.npy`` array of N numbers (shape [N] or [N, 1]; bool, integer or
float), or a text file with one number per line (blank lines and lines starting with ``#`` are skipped), in the
scene's vertex order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from core.errors import InputError
from core.gaussians import Gaussians
from core.sh import rgb_to_dc


def load_region(path: str | Path, count: int) -> np.ndarray:
    """The per-Gaussian weights [count] (float32 in [0, 1]) from a .npy or text file; InputError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such region file")
    values = _read_npy(path) if path.suffix.lower() == ".npy" else _read_text(path)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise InputError(f"{path}: region must hold one value per Gaussian, got an array of shape {values.shape}")
    if values.shape[0] != count:
        raise InputError(f"{path}: region has {values.shape[0]} values but the scene has {count} Gaussians")
    values = values.astype(np.float64)
    bad = ~np.isfinite(values) | (values < 0) | (values > 1)
    if bad.any():
        index = int(np.argmax(bad))
        raise InputError(f"{path}: region values must be in 0..1; value {index} is {values[index]}")
    return values.astype(np.float32)


def region_tensor(region: torch.Tensor | np.ndarray | None, count: int, device: torch.device) -> torch.Tensor | None:
    """The region as a float32 tensor [count] on ``device``, its length and range checked (None: no region)."""
    if region is None:
        return None
    values = torch.as_tensor(region, dtype=torch.float32).reshape(-1)
    if values.shape[0] != count or not bool(((values >= 0) & (values <= 1)).all()):
        raise InputError(f"region: need {count} values in 0..1 (one per Gaussian), got {values.shape[0]}")
    return values.to(device)


def blend(original: Gaussians, optimised: Gaussians, region: torch.Tensor) -> Gaussians:
    """original + region · (optimised − original) for colours, opacities, positions and scales (the last two move
    only with detail on). With detail, ``original`` and ``region`` are gathered by the rows' input origin: a split
    child takes its parent's weight and blends toward its parent's original values. Rotations are never optimised."""
    def mix(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
        return before + region.reshape(-1, *([1] * (after.dim() - 1))) * (after - before)

    return Gaussians(mix(original.means, optimised.means), optimised.quats,
                     mix(original.log_scales, optimised.log_scales), mix(original.opacity, optimised.opacity),
                     mix(original.sh_dc, optimised.sh_dc), mix(original.sh_rest, optimised.sh_rest))


def coverage_colours(g: Gaussians, region: torch.Tensor) -> Gaussians:
    """`g` with every Gaussian's colour set to its region weight (degree 0, grey): rendered over black, each
    pixel's value is Σ r α T, the coverage of the selection (= alpha where everything is selected)."""
    dc = rgb_to_dc(region.to(g.sh_dc.dtype))[:, None, None].expand(-1, 1, 3)
    return Gaussians(g.means, g.quats, g.log_scales, g.opacity.detach(), dc.contiguous(), g.sh_rest[:, :0])


def _read_npy(path: Path) -> np.ndarray:
    try:
        values = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable .npy array ({exc})") from None
    if not (np.issubdtype(values.dtype, np.number) or values.dtype == np.bool_):
        raise InputError(f"{path}: region must be numbers, got dtype {values.dtype}")
    return np.asarray(values)


def _read_text(path: Path) -> np.ndarray:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable text file ({exc.__class__.__name__})") from None
    values = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            values.append(float(text))
        except ValueError:
            raise InputError(f"{path}: line {number} is not a number: {text[:40]!r}") from None
    return np.asarray(values, dtype=np.float64)
