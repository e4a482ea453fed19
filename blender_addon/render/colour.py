"""Colour between the worker and Blender.

The worker returns display-referred sRGB (what 3DGS trains on), RGBA with premultiplied alpha, rows top to
bottom. Blender's render result holds scene-linear premultiplied RGBA, rows bottom to top, and its "Standard"
view transform encodes linear with the sRGB curve for display and 8-bit files. So pixels are un-premultiplied,
decoded sRGB -> linear and premultiplied again: with Standard (and dither 0), a saved PNG then holds exactly
the worker's sRGB colours and alpha. The world colour (scene-linear) goes the other way, as the background.
"""

from __future__ import annotations

import numpy as np


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    """The sRGB decoding curve (IEC 61966-2-1), for values in [0, 1]."""
    values = np.clip(values, 0.0, 1.0)
    return np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(values: np.ndarray) -> np.ndarray:
    """The sRGB encoding curve, for values in [0, 1]."""
    values = np.clip(values, 0.0, 1.0)
    return np.where(values <= 0.0031308, values * 12.92, 1.055 * values ** (1 / 2.4) - 0.055)


def straight_colour(rgba: np.ndarray) -> np.ndarray:
    """RGB divided by alpha (0 where alpha is 0) of premultiplied RGBA."""
    alpha = rgba[..., 3:4]
    return np.divide(rgba[..., :3], alpha, out=np.zeros_like(rgba[..., :3]), where=alpha > 0)


def blender_pixels(rgba_srgb: np.ndarray) -> np.ndarray:
    """Worker RGBA [H, W, 4] (sRGB, premultiplied, top row first) as a render result's flat float32 buffer."""
    alpha = np.clip(rgba_srgb[..., 3:4], 0.0, 1.0)
    linear = srgb_to_linear(straight_colour(rgba_srgb)) * alpha
    return np.ascontiguousarray(np.concatenate([linear, alpha], axis=-1)[::-1], dtype=np.float32).ravel()


def png_pixels(rgba_srgb: np.ndarray) -> np.ndarray:
    """Worker RGBA as 8-bit straight-alpha sRGB [H, W, 4] (PNG's convention), top row first."""
    alpha = np.clip(rgba_srgb[..., 3:4], 0.0, 1.0)
    rgba = np.concatenate([np.clip(straight_colour(rgba_srgb), 0.0, 1.0), alpha], axis=-1)
    return np.round(rgba * 255.0).astype(np.uint8)
