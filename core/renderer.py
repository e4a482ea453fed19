"""render(): the one way the project turns Gaussians and a camera into an image.

Two backends with the same behaviour: gsplat's CUDA rasterizer where a CUDA GPU is available ("gsplat"), and
the pure-PyTorch ``core.raster_torch`` everywhere else ("torch": CPU, Apple MPS). Both are differentiable.
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass

import torch
from torch import Tensor

from core.errors import InputError
from core.gaussians import Gaussians
from core.raster_torch import rasterize_torch

BACKENDS = ("gsplat", "torch")
# The torch backend's output does not depend on its tile size; 4-pixel tiles give it the fewest
# pixel-Gaussian pairs to evaluate for real scenes (most footprints span a few pixels).
TORCH_TILE_SIZE = 4


@dataclass
class RenderOutput:
    """A rendered view: ``image`` [H, W, 3] RGB (background composited), ``alpha`` [H, W, 1] coverage.

    ``depth`` [H, W, 1] is the expected camera-space depth Σ w z / Σ w (``render(..., depth=True)``).
    With ``render(..., absgrad=True)``: ``visible`` [V] int64 are the Gaussians the rasterizer drew (inside the
    frustum, opaque enough, footprint on the image), ``radii`` [V, 2] their footprint half-widths in pixels, and
    after the backward pass ``means2d_absgrad()`` gives Σ over pixels |dL/dmeans2d| [V, 2] for them.
    """

    image: Tensor
    alpha: Tensor
    depth: Tensor | None = None
    visible: Tensor | None = None
    radii: Tensor | None = None
    means2d: Tensor | None = None

    def means2d_absgrad(self) -> Tensor:
        """[V, 2] Σ over pixels of |dL/dmeans2d| per visible Gaussian (pixels), rows as in ``visible``.

        Both backends fill it the same way: gsplat's ``meta["means2d"].absgrad`` (packed, one row per visible
        Gaussian) and ``core.raster_torch``'s (one row per Gaussian). Zeros before any backward pass.
        """
        if self.means2d is None or self.visible is None:
            raise ValueError("render(..., absgrad=True) was not asked for: no image-plane gradient to read")
        absgrad = getattr(self.means2d, "absgrad", None)
        if absgrad is None:
            return self.means2d.new_zeros((len(self.visible), 2))
        return absgrad[0, self.visible] if absgrad.dim() == 3 else absgrad


def _gsplat_installed() -> bool:
    return importlib.util.find_spec("gsplat") is not None


def gsplat_version() -> tuple[str | None, str | None]:
    """(gsplat's version, None) when it imports, else (None, why not): for reports and the worker's check."""
    try:
        import gsplat
    except Exception as exc:  # reported, not raised: the PyTorch renderer works without gsplat
        return None, f"{exc.__class__.__name__}: {exc}"
    return gsplat.__version__, None


def available_backends() -> list[str]:
    """Backends usable on this machine: "gsplat" needs the package and a CUDA GPU; "torch" always works."""
    usable = ["torch"]
    if torch.cuda.is_available() and _gsplat_installed():
        usable.insert(0, "gsplat")
    return usable


def pick_backend(device: torch.device | str, requested: str = "auto") -> str:
    """The backend for tensors on ``device``: "auto" is gsplat on CUDA (when installed), torch elsewhere.

    Asking for "gsplat" without a CUDA device or without the package raises InputError (no silent fallback),
    since the caller asked for the GPU rasterizer explicitly.
    """
    device = torch.device(device)
    if requested == "auto":
        return "gsplat" if device.type == "cuda" and _gsplat_installed() else "torch"
    if requested not in BACKENDS:
        raise InputError(f"backend {requested!r}: unknown, choose one of auto, {', '.join(BACKENDS)}")
    if requested == "gsplat" and device.type != "cuda":
        raise InputError(f"backend 'gsplat': needs a CUDA GPU but the scene is on {device.type}; "
                         "use backend 'torch' or 'auto'")
    if requested == "gsplat" and not _gsplat_installed():
        raise InputError("backend 'gsplat': the gsplat package is not installed; use backend 'torch' or 'auto'")
    return requested


def _scene_sh_degree(g: Gaussians, sh_degree: int | None) -> int:
    if sh_degree is None:
        return g.sh_degree
    if not 0 <= sh_degree <= g.sh_degree:
        raise InputError(f"sh_degree {sh_degree}: the scene has SH degree {g.sh_degree}; use 0..{g.sh_degree}")
    return sh_degree


def render(g: Gaussians, viewmat: Tensor, K: Tensor, width: int, height: int, *, background: Tensor | None = None,
           backend: str = "auto", sh_degree: int | None = None, absgrad: bool = False,
           depth: bool = False) -> RenderOutput:
    """Render ``g`` from one camera: ``viewmat`` [4, 4] world-to-camera (OpenCV axes), ``K`` [3, 3] in pixels.

    Activates the raw parameters (exp of log-scales, sigmoid of opacity logits), evaluates SH up to
    ``sh_degree`` (None: every band of ``g``), composites over ``background`` [3] (None: black).
    Differentiable with respect to every parameter of ``g``.

    Args:
        absgrad: also return the visible Gaussians and their image-plane positions, whose accumulated absolute
            gradient ``RenderOutput.means2d_absgrad()`` reads after the backward pass (densification).
        depth: also return the expected depth (gsplat's render_mode "RGB+ED").

    Returns:
        RenderOutput: image [H, W, 3], alpha [H, W, 1], and depth / visible / radii / means2d as asked.
    """
    chosen = pick_backend(g.device, backend)
    degree = _scene_sh_degree(g, sh_degree)
    viewmats = viewmat.to(g.device, g.means.dtype).reshape(1, 4, 4)
    Ks = K.to(g.device, g.means.dtype).reshape(1, 3, 3)
    arguments = (g.means, g.quats, torch.exp(g.log_scales), torch.sigmoid(g.opacity), g.sh, viewmats, Ks,
                 int(width), int(height))
    mode = "RGB+ED" if depth else "RGB"
    if chosen == "gsplat":
        from gsplat import rasterization  # imported here: the package is optional and slow to import

        colors, alphas, meta = rasterization(*arguments, sh_degree=degree, absgrad=absgrad, render_mode=mode)
    else:
        colors, alphas, meta = rasterize_torch(*arguments, sh_degree=degree, tile_size=TORCH_TILE_SIZE,
                                               absgrad=absgrad, render_mode=mode)
    image, alpha = colors[0, ..., :3], alphas[0]
    if background is not None:
        # Composited here, as the rasterizers do (colour + transmittance * background): gsplat 1.5.3's default
        # packed mode rejects a per-camera background by a shape check.
        image = image + (1 - alpha) * background.to(image.device, image.dtype)
    out = RenderOutput(image=image, alpha=alpha, depth=colors[0, ..., 3:] if depth else None)
    if absgrad:
        out.visible, out.radii, out.means2d = _visible(meta)
    return out


def _visible(meta: dict) -> tuple[Tensor, Tensor, Tensor]:
    """(ids [V], radii [V, 2], means2d) of one camera's drawn Gaussians from either rasterizer's meta.

    gsplat's packed meta lists only drawn Gaussians (``gaussian_ids``); the unpacked form (raster_torch) has a
    row per Gaussian, zero radii where culled.
    """
    radii = meta["radii"]
    if meta.get("gaussian_ids") is not None:
        radii = radii if radii.dim() == 2 else radii[:, None].expand(-1, 2)  # gsplat < 1.5: one radius
        return meta["gaussian_ids"].long(), radii, meta["means2d"]
    ids = torch.nonzero((radii[0] > 0).all(-1)).squeeze(1)
    return ids, radii[0, ids], meta["means2d"]


def render_smoke_test(device: str = "cuda") -> float:
    """Render a tiny scene once on ``device`` (compiles gsplat's CUDA kernels on first use); returns seconds."""
    start = time.perf_counter()
    dev = torch.device(device)
    g = Gaussians(torch.zeros(1, 3, device=dev), torch.tensor([[1.0, 0, 0, 0]], device=dev),
                  torch.full((1, 3), -2.0, device=dev), torch.zeros(1, device=dev), torch.zeros(1, 1, 3, device=dev),
                  torch.zeros(1, 0, 3, device=dev))
    viewmat = torch.eye(4, device=dev)
    viewmat[2, 3] = 2.0
    K = torch.tensor([[16.0, 0, 8], [0, 16.0, 8], [0, 0, 1]], device=dev)
    image = render(g, viewmat, K, 16, 16).image
    if not bool(torch.isfinite(image).all()) or float(image.max()) <= 0:
        raise RuntimeError(f"the renderer on {device} produced an empty or invalid image")
    return time.perf_counter() - start
