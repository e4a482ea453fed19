"""Image files in and out: style paintings, previews and renders (Pillow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from core.errors import InputError
from interchange.atomic import atomic_write

Image.MAX_IMAGE_PIXELS = 400_000_000  # 8K paintings are welcome; Pillow's default bomb guard stops at ~89 MP


def load_image(path: str | Path) -> torch.Tensor:
    """An RGB image file as a float32 tensor [H, W, 3] in [0, 1] (alpha dropped, palette/greyscale converted)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such image file")
    try:
        with Image.open(path) as im:
            im.load()
            rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable image ({exc.__class__.__name__}: {exc})") from None
    if min(rgb.shape[:2]) < 16:
        raise InputError(f"{path}: image is too small ({rgb.shape[1]}x{rgb.shape[0]} px; at least 16 px per side)")
    return torch.from_numpy(rgb)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """[H, W, 3|4] float in [0, 1] → uint8 array (rounded, clamped)."""
    return (image.detach().clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy())


def save_png(path: str | Path, image: torch.Tensor | np.ndarray) -> Path:
    """Write [H, W, 3|4] (float in [0, 1] or uint8) as PNG, atomically."""
    path = Path(path)
    array = to_uint8(image) if isinstance(image, torch.Tensor) else np.asarray(image)
    with atomic_write(path) as stream:
        Image.fromarray(array).save(stream, format="PNG")
    return path


def side_by_side(images: list[torch.Tensor], gap: int = 4) -> torch.Tensor:
    """Images of equal height joined left to right with a white gap, for before/after previews."""
    height = max(im.shape[0] for im in images)
    parts = []
    for i, im in enumerate(images):
        if im.shape[0] < height:
            im = torch.cat([im, im.new_ones(height - im.shape[0], im.shape[1], 3)], 0)
        parts.append(im)
        if i < len(images) - 1:
            parts.append(im.new_ones(height, gap, 3))
    return torch.cat(parts, dim=1)
