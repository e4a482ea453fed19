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
    return decode_srgb_in_place(np.array(values, dtype=np.result_type(values, np.float32)))


def decode_srgb_in_place(values: np.ndarray) -> np.ndarray:
    """srgb_to_linear written over a float array (clipped to [0, 1] first); returns it. In place, as a frame of
    the render engine is millions of values and each temporary array costs about as much as the curve."""
    np.clip(values, 0.0, 1.0, out=values)
    low = values <= 0.04045
    low_values = values / 12.92
    values += 0.055
    values /= 1.055
    np.power(values, 2.4, out=values)
    np.copyto(values, low_values, where=low)
    return values


def linear_to_srgb(values: np.ndarray) -> np.ndarray:
    """The sRGB encoding curve, for values in [0, 1]."""
    values = np.clip(values, 0.0, 1.0)
    return np.where(values <= 0.0031308, values * 12.92, 1.055 * values ** (1 / 2.4) - 0.055)


def straight_colour(rgba: np.ndarray) -> np.ndarray:
    """RGB divided by alpha (0 where alpha is 0) of premultiplied RGBA."""
    alpha = rgba[..., 3:4]
    return np.divide(rgba[..., :3], alpha, out=np.zeros_like(rgba[..., :3]), where=alpha > 0)


def blender_pixels(rgba_srgb: np.ndarray) -> np.ndarray:
    """Worker RGBA [H, W, 4] (sRGB, premultiplied, top row first) as a render result's flat float32 buffer.

    Few temporaries, rows flipped on the way in: this runs on every frame of an animation, and at 1920x1080 its
    8 million values took longer than a GPU's render of the frame.
    """
    source = rgba_srgb[::-1]
    colour = decode_srgb_in_place(straight_colour(source).astype(np.float32, copy=False))
    pixels = np.empty(source.shape, np.float32)
    np.clip(source[..., 3:4], 0.0, 1.0, out=pixels[..., 3:4])
    np.multiply(colour, pixels[..., 3:4], out=pixels[..., :3])
    return pixels.ravel()


def png_pixels(rgba_srgb: np.ndarray) -> np.ndarray:
    """Worker RGBA as 8-bit straight-alpha sRGB [H, W, 4] (PNG's convention), top row first."""
    alpha = np.clip(rgba_srgb[..., 3:4], 0.0, 1.0)
    rgba = np.concatenate([np.clip(straight_colour(rgba_srgb), 0.0, 1.0), alpha], axis=-1)
    return np.round(rgba * 255.0).astype(np.uint8)
