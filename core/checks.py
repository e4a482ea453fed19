"""Value checks on a loaded scene and its cameras: what parses but cannot be stylized sensibly.

The readers (interchange.ply, core.cameras) refuse files that are malformed; this module looks at the values of files
that read fine, before any heavy work or any output file: it refuses what cannot work, with one line naming the
file, and warns (InputWarning, one line with counts) about what works but is probably a mistake. The rules are
listed in the README's "Input rules".
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from core.cameras import Camera
from core.errors import InputError, InputWarning
from interchange.ply import SplatData
from interchange.settings import BY_NAME, StylizeSettings, mention

if TYPE_CHECKING:
    from core.trained_scene import TrainedScene
    from core.views import Views

# gsplat and the torch rasterizer skip Gaussians less opaque than this.
MIN_VISIBLE_OPACITY = 1 / 255
# A quaternion whose float32 squared norm underflows or overflows cannot be normalised by the renderers.
QUAT_NORM_RANGE = (1e-18, 1e18)
# exp(log-scale) squared (the covariance) overflows float32 above this log-scale.
MAX_LOG_SCALE = 44.0
# A Gaussian wider than this many times the scene's extent is reported (training leftovers that veil views).
ENORMOUS_SCALE_FACTOR = 10.0
# Colours are 0.5 + 0.28 * f_dc: a coefficient beyond this is thousands of times brighter than white and
# overflows the loss.
MAX_SH_MAGNITUDE = 1e4
MAX_CAMERA_SIDE = 65536
MIN_RENDER_SIDE = 16
# Cameras are checked against at most this many Gaussian centres (then all of them for a camera that saw none).
VISIBILITY_SAMPLE = 100_000
# A centre this far outside the image (as a share of its size) can still cover it with its footprint.
VISIBILITY_MARGIN = 0.1
# The settings that can make a run diverge (its step size and the loss weights), named by divergence_hint.
DIVERGENCE_SUSPECTS = ("learning_rate", "content_weight", "style_strength")


def check_settings(settings: StylizeSettings) -> None:
    """Refuse settings that cannot work: InputError('settings: <name> <problem>') for the first one, the setting
    mentioned (interchange.settings.mention) so that each front end names it its own way."""
    for item, problem in settings.problems():
        raise InputError(f"settings: {mention(item.name)} {problem}")


def check_scene(scene: SplatData, source: str) -> SplatData:
    """Refuse a scene that cannot be stylized; warn about odd values; return the scene to render.

    Refused: no Gaussian opaque enough to be seen, scales too large for float32, colour coefficients beyond
    ±MAX_SH_MAGNITUDE. Warned about (with counts): zero quaternions (rendered unrotated: the returned scene holds
    the identity there, so every renderer draws them alike; the written result keeps the file's values) and
    Gaussians much larger than the scene.
    """
    _check_opacity(scene, source)
    _check_sh(scene, source)
    log_scales = scene.log_scales()
    too_large = log_scales.max(axis=1) > MAX_LOG_SCALE
    if too_large.any():
        raise InputError(f"{source}: {_count(too_large, scene.count)} Gaussians have scales too large to render "
                         f"(log-scale up to {log_scales.max():.3g}; at most {MAX_LOG_SCALE:g})")
    _warn_enormous(scene, log_scales, source)
    return _with_renderable_quats(scene, source)


def check_cameras(cameras: Sequence[Camera], source: str, resolution: int) -> None:
    """Refuse cameras with non-finite values, absurd sizes, or too elongated to render at ``resolution``."""
    problems = [(i, problem) for i, camera in enumerate(cameras)
                if (problem := _camera_problem(camera, resolution)) is not None]
    if problems:
        index, problem = problems[0]
        more = f" (and {len(problems) - 1} more cameras)" if len(problems) > 1 else ""
        raise InputError(f"{source}: camera {index} ({cameras[index].name!r}) {problem}{more}")


def check_visibility(scene: SplatData, cameras: Sequence[Camera], source: str) -> None:
    """Refuse cameras of which none sees a Gaussian; warn, with a count, about the cameras that see none."""
    opaque = _opaque(scene)
    centres = scene.means()[opaque].astype(np.float64)
    sample = centres[:: max(1, len(centres) // VISIBILITY_SAMPLE)]
    blind = [camera for camera in cameras if not _sees_any(camera, sample) and not _sees_any(camera, centres)]
    if len(blind) == len(cameras):
        raise InputError(f"{source}: none of the {len(cameras)} cameras sees any Gaussian of the scene (cameras of "
                         "another scene, or in another coordinate frame?)")
    if blind:
        warnings.warn(f"{source}: {len(blind)} of {len(cameras)} cameras see no Gaussian (e.g. {blind[0].name!r}); "
                      "their views stay empty", InputWarning, stacklevel=2)


def check_result(splat: SplatData, hint: str) -> None:
    """Refuse to write a diverged result: non-finite values, or colours beyond what check_scene accepts.

    ``hint`` names the likely cause (see divergence_hint).
    """
    names = [name for name in splat.vertices.dtype.names if splat.vertices.dtype[name].kind == "f"]
    bad = sum(int(np.count_nonzero(~np.isfinite(splat.vertices[name]))) for name in names)
    if bad:
        raise InputError(f"settings: the result has {bad} non-finite values and was not written; {hint}")
    try:
        _check_sh(splat, "the result")
    except InputError as error:
        raise InputError(f"settings: {error}; it was not written; {hint}") from None


def divergence_hint(settings: StylizeSettings) -> str:
    """Which setting most likely made a run diverge: the step size or loss weight furthest above its default.

    The setting is mentioned (interchange.settings.mention), so each front end names it its own way.
    """
    def excess(name: str) -> float:
        value = getattr(settings, name)
        return value / BY_NAME[name].default if math.isfinite(value) else math.inf

    name = max(DIVERGENCE_SUSPECTS, key=excess)
    item = BY_NAME[name]
    return (f"likely cause: the {item.spec.label.lower()} {getattr(settings, name):g} ({mention(name)}, default "
            f"{item.default:g}); lower it")


def _count(mask: np.ndarray, total: int) -> str:
    return f"{int(np.count_nonzero(mask))} of {total}"


def _opaque(scene: SplatData) -> np.ndarray:
    """Gaussians the renderers draw: opacity sigmoid(logit) at least MIN_VISIBLE_OPACITY."""
    return scene.opacity() >= math.log(MIN_VISIBLE_OPACITY / (1 - MIN_VISIBLE_OPACITY))


def _check_opacity(scene: SplatData, source: str) -> None:
    if not _opaque(scene).any():
        raise InputError(f"{source}: all {scene.count} Gaussians are transparent (opacity below 1/255): there is "
                         "nothing to see or stylize")


def _check_sh(scene: SplatData, source: str) -> None:
    """Refuse colour coefficients far beyond any displayable colour: they overflow the loss.

    Checked column by column, so a large scene needs no copy of its SH table.
    """
    names = [name for name in scene.vertices.dtype.names if name.startswith(("f_dc_", "f_rest_"))]
    bad = np.zeros(scene.count, dtype=bool)
    largest = 0.0
    for name in names:
        magnitude = np.abs(scene.vertices[name])
        bad |= magnitude > MAX_SH_MAGNITUDE
        largest = max(largest, float(magnitude.max()))
    if bad.any():
        raise InputError(f"{source}: {_count(bad, scene.count)} Gaussians have colour coefficients (f_dc/f_rest) "
                         f"up to {largest:.3g}, far beyond any colour (at most ±{MAX_SH_MAGNITUDE:g})")


def _warn_enormous(scene: SplatData, log_scales: np.ndarray, source: str) -> None:
    """Warn about Gaussians wider than ENORMOUS_SCALE_FACTOR times the extent of the scene's centres."""
    means = scene.means()[_opaque(scene)]
    low, high = np.percentile(means, [1, 99], axis=0)
    extent = float(np.linalg.norm(high - low))
    if extent <= 0:
        return
    largest = np.exp(log_scales.max(axis=1).astype(np.float64))
    enormous = largest > ENORMOUS_SCALE_FACTOR * extent
    if enormous.any():
        warnings.warn(f"{source}: {_count(enormous, scene.count)} Gaussians are more than "
                      f"{ENORMOUS_SCALE_FACTOR:g}x wider than the scene (scale up to {largest.max():.3g}, scene "
                      f"extent {extent:.3g}); they can veil whole views", InputWarning, stacklevel=3)


def degenerate_quats(scene: SplatData) -> np.ndarray:
    """[N] bool: quaternions that cannot be normalised (zero, or too large to square in float64)."""
    norms = np.linalg.norm(scene.quats().astype(np.float64), axis=1)
    return (norms < QUAT_NORM_RANGE[0]) | (norms > QUAT_NORM_RANGE[1])


def restore_degenerate_quats(result: SplatData, original: SplatData) -> SplatData:
    """The result with the original's unrenderable quaternions put back bit for bit (they were drawn as the
    identity); a result with another Gaussian count (densified) keeps the identity its rows were split from."""
    if result.count != original.count:
        return result
    degenerate = degenerate_quats(original)
    if not degenerate.any():
        return result
    names = [f"rot_{i}" for i in range(4)]
    columns = {name: np.where(degenerate, original.vertices[name], result.vertices[name]) for name in names}
    return result.with_columns(columns)


def _with_renderable_quats(scene: SplatData, source: str) -> SplatData:
    """The scene with zero (non-normalisable) quaternions replaced by the identity, with a warning; else itself."""
    quats = scene.quats()
    degenerate = degenerate_quats(scene)
    if not degenerate.any():
        return scene
    warnings.warn(f"{source}: {_count(degenerate, scene.count)} Gaussians have a zero rotation quaternion; they "
                  "are drawn unrotated", InputWarning, stacklevel=3)
    quats[degenerate] = (1.0, 0.0, 0.0, 0.0)
    return scene.with_columns({f"rot_{i}": quats[:, i] for i in range(4)})


def _camera_problem(camera: Camera, resolution: int) -> str | None:
    """What makes a camera unusable, or None."""
    values = np.array([camera.fx, camera.fy, camera.cx, camera.cy, *camera.viewmat.ravel()])
    if not np.isfinite(values).all():
        return "has a non-finite intrinsic or pose value"
    if camera.fx <= 0 or camera.fy <= 0:
        return f"has a focal length that is not positive (fx={camera.fx:g}, fy={camera.fy:g})"
    if max(camera.width, camera.height) > MAX_CAMERA_SIDE:
        return (f"is {camera.width}x{camera.height} px: not a plausible image size "
                f"(at most {MAX_CAMERA_SIDE} px per side)")
    rendered = camera.with_long_side(resolution)
    if min(rendered.width, rendered.height) < MIN_RENDER_SIDE:
        return (f"is {camera.width}x{camera.height} px: too elongated, it would render at {rendered.width}x"
                f"{rendered.height} px at {mention('resolution')} {resolution} (at least {MIN_RENDER_SIDE} px per "
                "side)")
    return None


def _sees_any(camera: Camera, centres: np.ndarray) -> bool:
    """Whether any of the centres [N, 3] lies in front of the camera and inside its image (with a margin)."""
    if len(centres) == 0:
        return False
    pixels, depth = camera.project(centres)
    margin_x, margin_y = VISIBILITY_MARGIN * camera.width, VISIBILITY_MARGIN * camera.height
    with np.errstate(invalid="ignore"):
        inside = ((depth > 0) & (pixels[:, 0] >= -margin_x) & (pixels[:, 0] <= camera.width + margin_x)
                  & (pixels[:, 1] >= -margin_y) & (pixels[:, 1] <= camera.height + margin_y))
    return bool(inside.any())


def check_finite(record: dict, params: Iterable[torch.Tensor], settings: StylizeSettings) -> None:
    """Stop a diverged run at once, before a preview or checkpoint of it is written, naming the likely cause."""
    loss_finite = all(math.isfinite(value) for value in record.values() if isinstance(value, float))
    if loss_finite and all(bool(torch.isfinite(p).all()) for p in params):
        return
    what = "the scene's colours" if loss_finite else "the loss"
    raise InputError(f"settings: the optimisation diverged at iteration {record['iteration']} ({what} became "
                     f"NaN or infinite); {divergence_hint(settings)}")


def check_something_visible(scene: TrainedScene, views: Views, history: Sequence[dict]) -> None:
    """A run in which no Gaussian showed in any view it used stylized nothing: say so instead of returning a copy.

    Cheap when colours changed; else the views used (``history``'s) are rendered once more to tell "nothing
    visible" from a legitimately zero gradient (a painting equal to the renders).
    """
    if not scene.unchanged():
        return
    used = sorted({record["view"] for record in history})
    with torch.no_grad():
        if any(bool(views.render(scene.original, i)[1].max() > 0) for i in used):
            return
    raise InputError(f"cameras: nothing was stylized: no Gaussian is visible in the views used ({len(used)} of "
                     f"{len(views)}); check that the cameras look at the scene")
