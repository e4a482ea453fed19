"""Checkpoints: a run's state saved every few iterations, and the rule for resuming one.

A checkpoint holds tensors and plain data only (it loads with ``weights_only=True``, so a crafted file cannot run
code) and is bound to what made it: the settings, and a digest of each input (the scene, the painting, the cameras
and the region). A run resumes a checkpoint only when all of them match exactly; any other checkpoint in its place
is refused in one line that names what differs, so a run can never continue another scene's colours.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from core.cameras import Camera
from core.errors import InputError
from interchange.atomic import atomic_write
from interchange.ply import GAUSSIAN_VALUES, SplatData
from interchange.settings import StylizeSettings

FORMAT = 3
"""Raise when the layout changes (3: input digests)."""
KEYS = frozenset({"format", "settings", "inputs", "iteration", "params", "optimizer", "densify", "geometry", "rng",
                  "history"})


def input_digests(scene: SplatData, painting: torch.Tensor, cameras: Sequence[Camera],
                  region: torch.Tensor | None) -> dict[str, str]:
    """A digest of each input as the run sees it: the scene's vertex table (every property), the painting's pixels,
    the cameras (pose, intrinsics, size) and the region's weights (none: "whole scene")."""
    camera_values = [np.concatenate([np.asarray(c.viewmat, np.float64).ravel(),
                                     np.asarray([c.fx, c.fy, c.cx, c.cy, c.width, c.height], np.float64)])
                     for c in cameras]
    return {"scene": _digest(scene.vertices.tobytes()),
            "painting": _digest(painting.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()),
            "cameras": _digest(np.stack(camera_values).tobytes()),
            "region": "whole scene" if region is None else _digest(region.detach().cpu().float().numpy().tobytes())}


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def save(path: Path, state: dict) -> None:
    """Write a checkpoint atomically (a reader never sees half of one)."""
    with atomic_write(path) as stream:
        torch.save(state, stream)


def load(path: Path, settings: StylizeSettings, inputs: dict[str, str]) -> dict | None:
    """The checkpoint at ``path`` if there is one, after checking it belongs to this run; None if there is none.

    Refused in one line (``InputError``): a file that is not a checkpoint of this version (a foreign pickle, a
    truncated or corrupt file, an older layout), or one made with other settings or other inputs.
    """
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise InputError(f"{path}: not a checkpoint of this program (it holds objects other than tensors and "
                         "plain data; refused unread); delete it or choose another output folder") from None
    except (RuntimeError, EOFError, ValueError, OSError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"{path}: unreadable checkpoint ({reason}); delete it or choose another output "
                         "folder") from None
    if not _has_layout(state):
        raise InputError(f"{path}: not a checkpoint of this version (format {FORMAT}); delete it or choose "
                         "another output folder")
    if state["settings"] != asdict(settings):
        changed = sorted(name for name, value in asdict(settings).items() if state["settings"].get(name) != value)
        raise InputError(f"{path}: checkpoint was made with other settings ({', '.join(changed)}); delete it or "
                         "choose another output folder")
    differing = [name for name, digest in inputs.items() if state["inputs"].get(name) != digest]
    if differing:
        raise InputError(f"{path}: checkpoint was made for another {' and '.join(differing)}; delete it or "
                         "choose another output folder")
    return state


def _has_layout(state: object) -> bool:
    """Whether a loaded object has this version's layout (every parameter, one Gaussian count)."""
    if not isinstance(state, dict) or not KEYS <= set(state) or state["format"] != FORMAT:
        return False
    params = state["params"]
    return (isinstance(params, dict) and set(params) == set(GAUSSIAN_VALUES)
            and all(isinstance(t, torch.Tensor) for t in params.values())
            and len({t.shape[0] for t in params.values()}) == 1 and isinstance(state["inputs"], dict))
