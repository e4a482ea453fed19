"""A procedural Gaussian scene and a procedural 'painting', so the whole job runs with no input files."""

from __future__ import annotations

import numpy as np
import torch

from core.sh import C0
from interchange.ply import SplatData, make_splat_data


def demo_scene(count: int = 4000, seed: int = 0) -> SplatData:
    """A smoothly coloured sphere standing on a grey disc, y-down like COLMAP worlds, SH degree 1."""
    rng = np.random.default_rng(seed)
    n_sphere = count * 2 // 3
    n_ground = count - n_sphere
    direction = rng.normal(size=(n_sphere, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    sphere = 0.5 * direction
    radius = 0.9 * np.sqrt(rng.uniform(size=n_ground))
    angle = rng.uniform(0, 2 * np.pi, size=n_ground)
    ground = np.stack([radius * np.cos(angle), np.full(n_ground, 0.52), radius * np.sin(angle)], axis=1)
    means = np.concatenate([sphere, ground]).astype(np.float32)
    rgb = np.concatenate([0.5 + 0.4 * direction, np.full((n_ground, 3), 0.55)])
    log_scales = np.concatenate([np.full((n_sphere, 3), np.log(0.045)),
                                 np.tile(np.log([0.05, 0.008, 0.05]), (n_ground, 1))])
    quats = np.tile([1.0, 0.0, 0.0, 0.0], (count, 1))
    opacity_logits = np.full(count, 2.0)
    sh_rest = 0.02 * rng.normal(size=(count, 3, 3))
    return make_splat_data(means, quats, log_scales, opacity_logits, (rgb - 0.5) / C0, sh_rest,
                           comments=("procedural demo scene made by sos-stylizer",))


def demo_style(size: int = 256) -> torch.Tensor:
    """Swirling warm/cool brush-like bands with fine hatching: a style with structure at several scales."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    swirl = np.sin(12 * x + 4 * np.sin(6 * y)) + 0.5 * np.sin(40 * (x + y) + 3 * np.cos(9 * x))
    hatch = 0.15 * np.sin(140 * (x - 0.5 * y))
    t = 0.5 + 0.35 * swirl / 1.5 + hatch
    warm = np.array([0.95, 0.75, 0.2], dtype=np.float32)
    cool = np.array([0.1, 0.2, 0.55], dtype=np.float32)
    image = t[..., None] * warm + (1 - t[..., None]) * cool
    return torch.from_numpy(np.clip(image, 0, 1).astype(np.float32))
