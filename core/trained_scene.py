"""The scene being optimised: its tensors as leaves, Adam over the trained ones, a region's blending, and the
densifier that may add rows.

What trains: ``optimize`` picks the colours (SH DC), all SH bands, or those and opacity; with detail on, positions
and log-scales too (at ``geometry_rates``), each step followed by core.confinement's projection, until the guard
freezes them. A region keeps every Gaussian at ``original + r · (optimised − original)``, so weight 0 rows come
back bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

import numpy as np
import torch

from core import densify, regions
from core.cameras import Camera
from core.confinement import GeometryGuard, confine_
from core.gaussians import Gaussians
from interchange.ply import SplatData
from interchange.settings import StylizeSettings

TRAINED = {"color": ("sh_dc",), "sh": ("sh_dc", "sh_rest"), "sh+opacity": ("sh_dc", "sh_rest", "opacity")}
GEOMETRY = ("means", "log_scales")
GEOMETRY_SCALE_LR_RATIO = 30.0
"""--geometry-lr: positions learn at that rate times the cameras' extent, log-scales at 30 times it (3DGS's ratio of
its scaling and position learning rates, 5e-3 / 1.6e-4)."""
DENSIFY_SETTINGS = ("detail", "densify_every", "densify_threshold", "densify_dropout", "geometry_lr")


def trainable(values: dict[str, torch.Tensor], optimize: str, geometry: bool = False) -> dict[str, torch.Tensor]:
    """The tensors as leaves: those ``optimize`` trains (and with ``geometry`` positions and log-scales) are
    copies that require grad (an empty tensor, like sh_rest at SH degree 0, has nothing to train); the others are
    shared, detached."""
    trained = TRAINED[optimize] + (GEOMETRY if geometry else ())
    return {name: t.detach().clone().requires_grad_(True) if name in trained and t.numel() else t.detach()
            for name, t in values.items()}


def make_optimizer(params: dict[str, torch.Tensor], learning_rate: float,
                   rates: dict[str, float] | None = None) -> torch.optim.Adam:
    """Adam with one parameter group per trained tensor, named after it; ``rates`` overrides some groups' rate."""
    rates = rates or {}
    groups = [{"params": [t], "name": name, "lr": rates.get(name, learning_rate)}
              for name, t in params.items() if t.requires_grad]
    return torch.optim.Adam(groups, lr=learning_rate)


def geometry_rates(settings: StylizeSettings, cameras: Sequence[Camera]) -> dict[str, float]:
    """Learning rates of positions (``geometry_lr`` × the cameras' extent: 1.1 × the largest distance of a camera
    centre from their mean, as 3DGS scales its position rate) and log-scales (× ``GEOMETRY_SCALE_LR_RATIO``)."""
    centres = torch.as_tensor(np.stack([c.position() for c in cameras]), dtype=torch.float64)
    extent = 1.1 * float((centres - centres.mean(0)).norm(dim=1).max().clamp_min(1e-6))
    return {"means": settings.geometry_lr * extent, "log_scales": settings.geometry_lr * GEOMETRY_SCALE_LR_RATIO}


class TrainedScene:
    """The optimised tensors (``params``, by ``interchange.ply.GAUSSIAN_VALUES`` name), their optimizer, and what
    maps each current row to the input: the densifier's ``origin`` (``anchor``: each row's input Gaussian) and, with
    a region, its weights. ``born``: each row's geometry when it was made (the input's, or where a split put it),
    what the geometry guard rolls back to."""

    def __init__(self, original: Gaussians, settings: StylizeSettings, rates: dict[str, float],
                 memory_bytes: float | None = None, region: torch.Tensor | None = None,
                 guard: GeometryGuard | None = None):
        self.original = original
        self.settings = settings
        self.rates = rates
        self.densifier = densify.Densifier(
            original.count, detail=settings.detail, every=settings.densify_every, iterations=settings.iterations,
            threshold=settings.densify_threshold, dropout=settings.densify_dropout, seed=settings.seed,
            device=original.device, memory_bytes=memory_bytes)
        self.guard = guard
        self.region_input = region
        self.frozen = False
        self.params = trainable(original.values(), settings.optimize, self.moves_geometry)
        self.optimizer = make_optimizer(self.params, settings.learning_rate, rates)
        self.region, self.anchor = region, original
        self.born = {name: original.values()[name] for name in GEOMETRY}

    @property
    def moves_geometry(self) -> bool:
        """Whether positions and scales learn now: detail with a geometry rate, until the guard froze them."""
        return self.settings.moves_geometry and not self.frozen

    def step(self) -> None:
        """One Adam step, then the geometry projected back inside the capture (core.confinement)."""
        self.optimizer.step()
        if self.moves_geometry:
            confine_(self.params["means"], self.params["log_scales"], self.anchor)

    def start_from(self, sh_dc: torch.Tensor, sh_rest: torch.Tensor) -> None:
        """Start the optimisation from these colours instead of the capture's (a region still blends toward the
        capture)."""
        with torch.no_grad():
            self.params["sh_dc"].copy_(sh_dc)
            self.params["sh_rest"] = self.params["sh_rest"].detach().clone().copy_(sh_rest).requires_grad_(
                self.params["sh_rest"].requires_grad)
        self.optimizer = make_optimizer(self.params, self.settings.learning_rate, self.rates)

    def guard_geometry(self, iteration: int, last: bool = False) -> None:
        """While geometry learns (and once more after the ``last`` iteration): roll it back if the scene spills
        past the guard's limit (core.confinement)."""
        if self.guard is None or not (self.moves_geometry or last):
            return
        if not self.guard.passes(self.current(), iteration) and self.moves_geometry:
            self.roll_back_geometry()
            self.guard.rolled_back_at(iteration)

    def roll_back_geometry(self) -> None:
        """Every row's position and scale back to where it was made; geometry learns no more."""
        self.frozen = True
        self.optimizer.param_groups[:] = [g for g in self.optimizer.param_groups if g["name"] not in GEOMETRY]
        for name in GEOMETRY:
            self.optimizer.state.pop(self.params[name], None)
            self.params[name] = self.born[name].detach().clone()

    @property
    def count(self) -> int:
        return self.params["means"].shape[0]

    def current(self) -> Gaussians:
        """The Gaussians as rendered now (differentiable in the trained tensors; a region's blend applied)."""
        g = Gaussians.from_values(self.params)
        return g if self.region is None else regions.blend(self.anchor, g, self.region)

    def trained(self) -> list[torch.Tensor]:
        return [t for t in self.params.values() if t.requires_grad]

    def split(self, iteration: int, cameras: list[tuple[torch.Tensor, torch.Tensor, int, int]]) -> dict:
        """One densification round (a region's unselected rows are never split): the children confined to their
        parent's footprint; its record."""
        eligible = None if self.region is None else self.region > 0
        carried = {**self.params, **{f"born_{name}": t for name, t in self.born.items()}}
        carried, record = self.densifier.split(iteration, carried, self.optimizer, cameras, eligible)
        self.params = {name: carried[name] for name in self.params}
        self._follow_origin()
        means, log_scales = self.params["means"], self.params["log_scales"]
        confine_(means.detach(), log_scales.detach(), self.anchor)
        born = self.densifier.born
        self.born = {name: torch.where(born.reshape(-1, 1), self.params[name].detach(), carried[f"born_{name}"])
                     for name in GEOMETRY}
        return asdict(record)

    def _follow_origin(self) -> None:
        """After a split or a restore: each row's anchor (its input Gaussian) and, with a region, its weight and
        original values (a child takes its parent's)."""
        rows = self.densifier.origin
        self.anchor = self.original.rows(rows)
        if self.region_input is not None:
            self.region = self.region_input[rows]

    def state_dict(self) -> dict:
        """Tensors (whatever their count), optimizer and densification state, in tensors and plain data."""
        return {"params": {name: t.detach().cpu() for name, t in self.params.items()},
                "optimizer": self.optimizer.state_dict(), "densify": self.densifier.state_dict(),
                "geometry": {"frozen": self.frozen, "born": {name: t.cpu() for name, t in self.born.items()}
                             if self.settings.moves_geometry else None,
                             "guard": self.guard.state_dict() if self.guard else None}}

    def load_state_dict(self, state: dict) -> None:
        device = self.original.device
        saved = {name: t.to(device, torch.float32) for name, t in state["params"].items()}
        self.frozen = state["geometry"]["frozen"]
        if self.guard is not None:
            self.guard.load_state_dict(state["geometry"]["guard"])
        if state["geometry"]["born"] is not None:  # saved only where geometry learns (else the input's)
            self.born = {name: t.to(device) for name, t in state["geometry"]["born"].items()}
        self.params = trainable(saved, self.settings.optimize, self.moves_geometry)
        self.optimizer = make_optimizer(self.params, self.settings.learning_rate, self.rates)
        self.optimizer.load_state_dict(state["optimizer"])
        self.densifier.load_state_dict(state["densify"])
        self._follow_origin()

    def unchanged(self) -> bool:
        """Whether no colour or opacity has moved (the rows are the input's: nothing was stylized)."""
        live = self.current()
        return (live.count == self.original.count and torch.equal(live.sh, self.original.sh)
                and torch.equal(live.opacity, self.original.opacity))

    def splat_data(self, scene: SplatData) -> SplatData:
        """The result as the input's PLY table: new colours (and opacities), and with detail the rows the
        densifier made, each carrying its parent's every property with its new position and scale."""
        final = self.current()
        moved = self.densifier.enabled or self.settings.moves_geometry
        template = densify.splat_data(scene, self.densifier.origin, final.values()) if moved else scene
        return final.to_splat_data(template)

    def densify_report(self) -> dict:
        """Densification's report (core.densify), the settings that shaped it and the geometry guard's checks."""
        settings = {name: getattr(self.settings, name) for name in DENSIFY_SETTINGS}
        return {**self.densifier.report(), "settings": settings, "guard": self.guard.report() if self.guard else None}
