"""Image files in and out: style paintings, previews and renders (Pillow).

A painting is checked from its header before any pixel is decoded (format, size), so a file claiming
40000x40000 pixels is refused in a millisecond instead of being decoded into gigabytes. What the loader
accepts and how it converts odd files (the README's "Input rules" lists the same):

- formats: PNG, JPEG, WebP, TIFF, BMP, GIF (first frame), TGA; anything else is refused;
- size: at least ``MIN_SIDE`` px per side and at most ``painting_pixel_limit(resolution)`` pixels;
- greyscale, palette, CMYK and 16-bit files are converted to 8-bit RGB with their real brightness
  (a 16-bit greyscale PNG is scaled by 1/65535, never clipped to white); 32-bit float images are refused;
- transparency is composited over white (paper), with a warning naming how many pixels were transparent:
  the colours hidden under alpha 0 are arbitrary and must not become the style;
- EXIF orientation is applied, so the painting is used the way image viewers show it.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import InputError, InputWarning
from interchange.atomic import atomic_write

# Pillow's own decompression-bomb guard is replaced by load_image's header check (which names the file and the
# limit in one line); core opens no other user image.
Image.MAX_IMAGE_PIXELS = None
FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "BMP", "GIF", "TGA")
MIN_SIDE = 16
# The style is used at most at the render's size (core.sos.style_image_pyramid never upscales it), so a painting
# needs no more pixels than a few renders. The decoder must hold the whole file once (4 bytes per pixel), so the
# limit is what the run can use, within a floor that always accepts 8K paintings (≈ 270 MB decoded) and a
# ceiling that no run exceeds (≈ 1 GiB decoded).
PIXEL_LIMIT_FLOOR = 8192 * 8192
PIXEL_LIMIT_CEILING = 16384 * 16384
HIGH_DEPTH_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I")
WHITE = (255, 255, 255)


def painting_pixel_limit(resolution: int | None = None) -> int:
    """Most pixels a painting may have for renders whose long side is ``resolution`` px (None: the floor).

    A painting twice the render's size on each side is still accepted (it is reduced once decoded).
    """
    wanted = 0 if resolution is None else (2 * int(resolution)) ** 2
    return min(PIXEL_LIMIT_CEILING, max(PIXEL_LIMIT_FLOOR, wanted))


def load_image(path: str | Path, resolution: int | None = None) -> torch.Tensor:
    """A painting as a float32 RGB tensor [H, W, 3] in [0, 1], checked from its header before decoding.

    Args:
        path: PNG, JPEG, WebP, TIFF, BMP, GIF or TGA file.
        resolution: the run's render long side in px. The painting is then limited to
            ``painting_pixel_limit(resolution)`` pixels and, once decoded, reduced by a whole factor to a short
            side of at least ``resolution`` (the most any render uses); None keeps its size.

    Returns:
        [H, W, 3] float32 tensor; transparent pixels composited over white.

    Raises InputError naming the file for anything that is not such an image; warns (InputWarning) when
    transparency was composited.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such image file")
    try:
        with Image.open(path, formats=FORMATS) as im:
            _check_header(path, im, resolution)
            rgb = _decode(path, im, resolution)
    except InputError:
        raise
    except UnidentifiedImageError:
        raise InputError(f"{path}: not a readable image (supported formats: {', '.join(FORMATS)})") from None
    except MemoryError:
        raise InputError(f"{path}: not enough memory to decode this image; save it smaller") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure on a user's file is that file's problem
        raise InputError(f"{path}: not a readable image ({exc.__class__.__name__}: {exc})") from None
    return torch.from_numpy(rgb)


def _check_header(path: Path, im: Image.Image, resolution: int | None) -> None:
    """Size limits from the header alone (Image.open has decoded nothing yet)."""
    width, height = im.size
    if min(width, height) < MIN_SIDE:
        raise InputError(f"{path}: image is too small ({width}x{height} px; at least {MIN_SIDE} px per side)")
    limit = painting_pixel_limit(resolution)
    if width * height > limit:
        side = math.isqrt(limit)
        raise InputError(f"{path}: image is too large ({width}x{height} px = {width * height / 1e6:.0f} MP; "
                         f"at most {limit / 1e6:.0f} MP, e.g. {side}x{side}, at this --resolution): "
                         "save it smaller, the style is used at the render's size anyway")


def _decode(path: Path, im: Image.Image, resolution: int | None) -> np.ndarray:
    """Decode (JPEG at a reduced scale where it can), convert to RGB, reduce to the useful size, scale to [0, 1]."""
    if resolution is not None:
        im.draft(None, _useful_size(im.size, resolution))
    im.load()
    ImageOps.exif_transpose(im, in_place=True)
    if im.mode == "F":
        raise InputError(f"{path}: 32-bit floating-point images are not supported; save the painting as an 8- or "
                         "16-bit PNG, JPEG or TIFF")
    if im.mode in HIGH_DEPTH_GREY:
        return _grey_high_depth(path, im, resolution)
    rgb = _over_white(path, im) if _has_alpha(im) else im.convert("RGB")
    rgb = _reduced(rgb, resolution)
    return np.asarray(rgb, dtype=np.float32) / 255.0


def _useful_size(size: tuple[int, int], resolution: int) -> tuple[int, int]:
    """The size with a short side of ``resolution`` px (JPEG draft decodes at the smallest scale at least that big)."""
    scale = min(1.0, resolution / min(size))
    return max(1, math.ceil(size[0] * scale)), max(1, math.ceil(size[1] * scale))


def _reduced(im: Image.Image, resolution: int | None) -> Image.Image:
    """The image shrunk by the largest whole factor that keeps its short side at least ``resolution`` px."""
    factor = 1 if resolution is None else min(im.size) // resolution
    return im.reduce(factor) if factor >= 2 else im


def _grey_high_depth(path: Path, im: Image.Image, resolution: int | None) -> np.ndarray:
    """16-bit greyscale (Pillow's I;16 or I) as RGB in [0, 1]: values / 65535, not clipped at 255."""
    im = im.convert("I") if im.mode != "I" else im
    im = _reduced(im, resolution)
    grey = np.asarray(im, dtype=np.float32)
    if grey.min() < 0 or grey.max() > 65535:
        raise InputError(f"{path}: 32-bit integer images are not supported; save the painting as an 8- or "
                         "16-bit image")
    grey /= 65535.0
    return np.repeat(grey[:, :, None], 3, axis=2)


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info


def _over_white(path: Path, im: Image.Image) -> Image.Image:
    """RGB of an image with transparency composited over white; warns with the count of transparent pixels."""
    rgba = im.convert("RGBA")
    alpha = rgba.getchannel("A")
    transparent = int(np.count_nonzero(np.asarray(alpha) < 255))
    if transparent:
        warnings.warn(f"{path}: {transparent} of {im.width * im.height} pixels are transparent; the painting is "
                      "composited over white", InputWarning, stacklevel=2)
    canvas = Image.new("RGB", rgba.size, WHITE)
    canvas.paste(rgba, mask=alpha)
    return canvas


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
