"""Style-driven densification: split the Gaussians too coarse for the strokes the style loss asks for.

Recolouring alone cannot paint a stroke finer than the Gaussian under it. GaussianSR (Xie et al., "GaussianSR:
High Fidelity 2D Gaussian Splatting for Arbitrary-Scale Image Super-Resolution", 2024) densifies a 3DGS scene
for rendering above its capture's resolution: a Gaussian whose image-plane positional gradient, averaged over the
views it appears in, exceeds τ_pos is split in two, and *Gaussian dropout* keeps growth in check (a candidate is
split only with probability 1 − p). Here the SOS style loss supplies that gradient (GaussianSR's diffusion prior
is out of reach). What this module does, per run (``Densifier``):

- **statistics**: after each backward pass, per visible Gaussian, the norm of Σ over pixels |dL/dmeans2d|
  (the absolute-gradient variant of AbsGS, Ye et al. 2024, which both renderers return: a Gaussian that
  should hold a stroke *inside* it gets opposite pulls from its two sides, which a plain gradient cancels),
  the number of views it was drawn in, and its largest footprint radius in pixels;
- **candidates** every ``every`` iterations: average gradient above ``threshold`` × the mean over the Gaussians
  seen (a relative τ_pos: the SOS loss's scale depends on its weights and the resolution, so an absolute
  threshold would not carry from one run to another), and a footprint whose children would still cover the
  finest style feature (``MIN_SPLIT_RADIUS_PX``);
- **dropout**: each candidate is kept with probability 1 − ``dropout`` (seeded); the budget left is spread
  evenly over the rounds left, strongest gradients first;
- **split** (as 3DGS, Kerbl et al. 2023): two children drawn from the parent's Gaussian, scales ÷ 1.6, every other
  property inherited (colours, opacity, rotation, and through ``origin`` the PLY's extra properties); the
  optimiser's Adam moments of the parent are copied to both children;
- **pruning**: children that no camera can draw (outside every frustum, or footprint off every image);
- **budget**: (1 + detail) × the input count, at most ``MAX_BUDGET_MULTIPLE`` ×, and no more new Gaussians than
  ``MEMORY_SHARE`` of the memory available holds at ``BYTES_PER_GAUSSIAN`` each.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from interchange.ply import COLUMNS, SplatData
from core.raster_torch import project_gaussians, quat_scale_to_covar, quat_to_rotmat
from core.renderer import RenderOutput

VGG_FINEST_FEATURE_PX = 3
"""Receptive field of relu1_1, the finest style layer (one 3×3 convolution), in pixels of the finest scale (the
full-resolution render): the smallest detail the SOS loss can ask for. relu2_1 already sees 10 px."""
SPLIT_SCALE_DIVISOR = 1.6
"""Children's scales are the parent's ÷ 1.6 (3DGS: ÷ (0.8 × 2 children))."""
MIN_SPLIT_RADIUS_PX = SPLIT_SCALE_DIVISOR * VGG_FINEST_FEATURE_PX / 2
"""Smallest largest-footprint radius (px) of a candidate: its children's footprints (radius ÷ 1.6) still span
one finest style feature. Splitting smaller Gaussians would make detail no VGG layer can see. Both renderers'
radii are about 3σ of the projected Gaussian plus their 0.3 px² blur: a Gaussian no larger than that blur gets
a radius of at most 2 px, so the tiniest Gaussians are never split."""
MAX_BUDGET_MULTIPLE = 4.0
"""Never more than this many times the input's Gaussians, whatever ``detail`` says."""
BYTES_PER_GAUSSIAN = 2048
"""GPU memory one more Gaussian costs during a run, estimated: its parameters (59 floats at SH degree 3), the
per-step SH tensor and its gradient, Adam's moments, the rasterizer's per-Gaussian buffers and tile entries
(forward and backward) and these statistics come to about 1 KB in colour mode; twice that as margin (and for
``optimize=sh``). bench/densify.py reports peak memory against the count to refine it."""
MEMORY_SHARE = 0.10
"""Share of the memory budget (min of the cap and free memory) that new Gaussians may take; the memory plan of
the loss is made with that much less (``reserved_bytes``)."""

PerGaussian = dict[str, Tensor]
"""A scene's per-Gaussian tensors by name (first dimension N); this module reads "means", "quats", "log_scales"
and "opacity" (logits) and carries every other entry along unchanged."""


def budget(count: int, detail: float, memory_bytes: float | None = None) -> int:
    """Most Gaussians a run may end with: (1 + ``detail``) × ``count``, at most ``MAX_BUDGET_MULTIPLE`` ×, and
    no more new ones than ``MEMORY_SHARE`` of ``memory_bytes`` (None: no memory limit) holds."""
    limit = int(count * min(1.0 + max(detail, 0.0), MAX_BUDGET_MULTIPLE))
    if memory_bytes is not None:
        limit = min(limit, count + int(MEMORY_SHARE * memory_bytes // BYTES_PER_GAUSSIAN))
    return max(limit, count)


def reserved_bytes(count: int, limit: int) -> int:
    """Memory to keep out of the loss's memory plan for growing from ``count`` to ``limit`` Gaussians."""
    return max(limit - count, 0) * BYTES_PER_GAUSSIAN


class GradientStats:
    """Per-Gaussian accumulators between two splits (they restart after each split, as in 3DGS).

    ``grad_sum`` [N]: Σ over views of ‖Σ_pixels |dL/dmeans2d|‖ (pixels); ``views`` [N]: views drawn in;
    ``max_radius`` [N]: largest footprint radius seen (pixels).
    """

    def __init__(self, count: int, device: torch.device | str):
        self.grad_sum = torch.zeros(count, device=device)
        self.views = torch.zeros(count, dtype=torch.int32, device=device)
        self.max_radius = torch.zeros(count, device=device)

    @torch.no_grad()
    def add(self, out: RenderOutput) -> None:
        """Accumulate one rendered view, after its backward pass (``render(..., absgrad=True)``)."""
        ids = out.visible
        self.grad_sum.index_add_(0, ids, out.means2d_absgrad().float().norm(dim=-1))
        self.views.index_add_(0, ids, torch.ones_like(ids, dtype=torch.int32))
        radius = out.radii.float().amax(dim=-1)
        self.max_radius.scatter_reduce_(0, ids, radius, "amax")

    def pooled(self, pool: Callable[[list[Tensor], list[Tensor]], None]) -> None:
        """Make these the statistics of every rank's views: ``pool(sums, maxima)`` combines them in place
        (core.distributed.pool_in_place)."""
        pool([self.grad_sum, self.views], [self.max_radius])

    def clear_sums(self) -> None:
        """Zero the sums (not the largest radii): on every rank but one after pooling, so that the next pooling
        counts them once (checkpoints hold the pooled statistics)."""
        self.grad_sum.zero_()
        self.views.zero_()

    def mean_gradient(self) -> Tensor:
        """[N] average over the views a Gaussian was drawn in (0 where never drawn)."""
        return self.grad_sum / self.views.clamp_min(1)

    def state_dict(self) -> dict[str, Tensor]:
        return {"grad_sum": self.grad_sum.cpu(), "views": self.views.cpu(), "max_radius": self.max_radius.cpu()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        device = self.grad_sum.device
        self.grad_sum, self.views, self.max_radius = (state[k].to(device) for k in ("grad_sum", "views",
                                                                                      "max_radius"))


def choose_parents(stats: GradientStats, *, threshold: float, dropout: float, room: int,
                   generator: torch.Generator, eligible: Tensor | None = None) -> tuple[Tensor, int]:
    """Gaussians to split now (sorted ids) and how many were candidates before dropout and the room.

    Candidates: ``eligible`` (all when None; a region's selected Gaussians), drawn in at least one view, average
    gradient > ``threshold`` × the mean over the eligible ones drawn, largest footprint radius
    ≥ ``MIN_SPLIT_RADIUS_PX``. Each is kept with probability 1 − ``dropout`` (``generator``, on the CPU so a run
    draws the same on any device); when more are kept than ``room``, the strongest gradients win.
    """
    seen = stats.views > 0
    if eligible is not None:
        seen = seen & eligible
    if room <= 0 or not bool(seen.any()):
        return torch.zeros(0, dtype=torch.long, device=stats.views.device), 0
    gradient = stats.mean_gradient()
    reference = gradient[seen].mean()
    candidate = seen & (gradient > threshold * reference) & (stats.max_radius >= MIN_SPLIT_RADIUS_PX)
    ids = torch.nonzero(candidate).squeeze(1)
    kept = torch.rand(len(ids), generator=generator) >= dropout
    ids = ids[kept.to(ids.device)]
    if len(ids) > room:
        ids = ids[torch.topk(gradient[ids], room).indices]
    return torch.sort(ids).values, int(candidate.sum())


@torch.no_grad()
def sample_children(means: Tensor, quats: Tensor, log_scales: Tensor, parents: Tensor,
                    generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Two children per parent: positions drawn from the parent's Gaussian N(mean, R S² Rᵀ), log-scales − log 1.6.

    Returns (means [2S, 3], log_scales [2S, 3]): first children of all parents, then second children.
    """
    parents2 = torch.cat([parents, parents])
    noise = torch.randn(len(parents2), 3, generator=generator).to(means.device, means.dtype)
    local = noise * torch.exp(log_scales[parents2])
    offsets = (quat_to_rotmat(quats[parents2]) * local[:, None, :]).sum(-1)
    return means[parents2] + offsets, log_scales[parents2] - math.log(SPLIT_SCALE_DIVISOR)


def gather_rows(tensors: PerGaussian, rows: Tensor, optimizer: torch.optim.Optimizer | None = None
                ) -> PerGaussian:
    """Each tensor's rows ``rows`` (duplicates allowed), as new tensors; an optimised leaf stays a leaf that
    requires grad, the optimiser's param groups point at the new one, and its per-row state (Adam's exp_avg,
    exp_avg_sq) is gathered the same way, so a copied row carries its moments. Scalar state (step) is kept."""
    out = {}
    for name, tensor in tensors.items():
        new = tensor.detach()[rows].requires_grad_(tensor.requires_grad)
        if optimizer is not None and tensor.requires_grad:
            _move_optimizer_state(optimizer, tensor, new, rows)
        out[name] = new
    return out


def _move_optimizer_state(optimizer: torch.optim.Optimizer, old: Tensor, new: Tensor, rows: Tensor) -> None:
    for group in optimizer.param_groups:
        for i, param in enumerate(group["params"]):
            if param is old:
                group["params"][i] = new
    state = optimizer.state.pop(old, None)
    if state is not None:
        optimizer.state[new] = {key: value[rows] if torch.is_tensor(value) and value.dim() > 0
                                and value.shape[0] == old.shape[0] else value
                                for key, value in state.items()}


@torch.no_grad()
def drawable(means: Tensor, quats: Tensor, log_scales: Tensor, opacity_logits: Tensor,
             cameras: Sequence[tuple[Tensor, Tensor, int, int]]) -> Tensor:
    """[M] whether any camera (viewmat, K, width, height) draws each Gaussian: the rasterizers' culling (depth
    range, opacity ≥ 1/255, footprint on the image), without rasterizing."""
    covars = quat_scale_to_covar(quats, torch.exp(log_scales))
    opacities = torch.sigmoid(opacity_logits)
    seen = torch.zeros(len(means), dtype=torch.bool, device=means.device)
    for viewmat, K, width, height in cameras:
        projection = project_gaussians(means, covars, opacities, viewmat.to(means), K.to(means), width, height,
                                       near_plane=0.01, far_plane=1e10, eps2d=0.3)
        seen[projection.ids] = True
    return seen


@dataclass
class SplitRecord:
    """One densification round, as report.json and the progress events show it."""

    iteration: int
    before: int
    after: int
    candidates: int
    split: int
    pruned: int
    seconds: float


class Densifier:
    """Densification over one run: statistics, the split rule every ``every`` iterations, the budget.

    ``origin`` [N] maps every current Gaussian to the input row it descends from (``splat_data`` gathers the
    input's PLY rows with it, so every extra property comes along); ``born`` [N] marks the rows the last round
    created (both children of each split parent). Checkpoints: ``state_dict``.
    """

    def __init__(self, count: int, *, detail: float, every: int, iterations: int, threshold: float,
                 dropout: float, seed: int, device: torch.device | str, memory_bytes: float | None = None):
        self.input_count = count
        self.every = every
        self.threshold = threshold
        self.dropout = dropout
        self.limit = budget(count, detail, memory_bytes)
        self.last_round = (iterations - every) // every * every if every > 0 else 0
        self.enabled = detail > 0 and every > 0 and self.limit > count and self.last_round >= every
        self.stats = GradientStats(count, device)
        self.origin = torch.arange(count, device=device)
        self.born = torch.zeros(count, dtype=torch.bool, device=device)
        self.generator = torch.Generator().manual_seed(seed)
        self.rounds: list[SplitRecord] = []

    @property
    def count(self) -> int:
        return len(self.origin)

    @property
    def seconds(self) -> float:
        """Time spent splitting and pruning so far."""
        return sum(r.seconds for r in self.rounds)

    def report(self) -> dict:
        """For report.json: budget, counts before and after, time, and every round."""
        return {"enabled": self.enabled, "budget": self.limit, "gaussians_before": self.input_count,
                "gaussians_after": self.count, "seconds": self.seconds, "rounds": [asdict(r) for r in self.rounds]}

    def observe(self, out: RenderOutput) -> None:
        """Add one view's image-plane gradients (after its backward pass)."""
        if self.enabled:
            self.stats.add(out)

    def due(self, iteration: int) -> bool:
        """Whether to split after ``iteration``: a multiple of ``every``, leaving ``every`` iterations after it."""
        return self.enabled and iteration % self.every == 0 and iteration <= self.last_round

    def split(self, iteration: int, tensors: PerGaussian, optimizer: torch.optim.Optimizer | None,
              cameras: Sequence[tuple[Tensor, Tensor, int, int]], eligible: Tensor | None = None
              ) -> tuple[PerGaussian, SplitRecord]:
        """One round: choose (among ``eligible`` [N] when given), split, prune; returns the new tensors and what
        happened."""
        start = time.perf_counter()
        before = self.count
        rounds_left = (self.last_round - iteration) // self.every + 1
        room = -(-(self.limit - before) // rounds_left)
        parents, candidates = choose_parents(self.stats, threshold=self.threshold, dropout=self.dropout,
                                             room=room, generator=self.generator, eligible=eligible)
        tensors, children = self._split(tensors, parents, optimizer)
        self.born = torch.zeros(self.count, dtype=torch.bool, device=self.origin.device)
        self.born[children] = True
        pruned = self._prune(tensors, children, optimizer, cameras)
        tensors = pruned[0]
        self.stats = GradientStats(self.count, self.origin.device)
        if self.origin.is_cuda:
            torch.cuda.synchronize(self.origin.device)
        record = SplitRecord(iteration, before, self.count, candidates, len(parents), pruned[1],
                             time.perf_counter() - start)
        self.rounds.append(record)
        return tensors, record

    def _split(self, tensors: PerGaussian, parents: Tensor, optimizer: torch.optim.Optimizer | None
               ) -> tuple[PerGaussian, Tensor]:
        """The first child takes its parent's row, the second is appended; returns the children's rows."""
        count = self.count
        if len(parents) == 0:
            return tensors, parents
        means, scales = sample_children(tensors["means"], tensors["quats"], tensors["log_scales"], parents,
                                        self.generator)
        rows = torch.cat([torch.arange(count, device=parents.device), parents])
        tensors = gather_rows(tensors, rows, optimizer)
        children = torch.cat([parents, torch.arange(count, count + len(parents), device=parents.device)])
        with torch.no_grad():
            tensors["means"][children] = means
            tensors["log_scales"][children] = scales
        self.origin = self.origin[rows]
        return tensors, children

    def _prune(self, tensors: PerGaussian, children: Tensor, optimizer: torch.optim.Optimizer | None,
               cameras: Sequence[tuple[Tensor, Tensor, int, int]]) -> tuple[PerGaussian, int]:
        """Drop the children no camera draws."""
        if len(children) == 0:
            return tensors, 0
        seen = drawable(*(tensors[k].detach()[children] for k in ("means", "quats", "log_scales",
                                                                  "opacity")), cameras)
        if bool(seen.all()):
            return tensors, 0
        keep = torch.ones(self.count, dtype=torch.bool, device=children.device)
        keep[children[~seen]] = False
        rows = torch.nonzero(keep).squeeze(1)
        self.origin, self.born = self.origin[rows], self.born[rows]
        return gather_rows(tensors, rows, optimizer), int((~seen).sum())

    def state_dict(self) -> dict:
        return {"origin": self.origin.cpu(), "born": self.born.cpu(), "stats": self.stats.state_dict(),
                "generator": self.generator.get_state(), "rounds": [asdict(r) for r in self.rounds]}

    def load_state_dict(self, state: dict) -> None:
        device = self.origin.device
        self.origin, self.born = state["origin"].to(device), state["born"].to(device)
        self.stats = GradientStats(self.count, device)
        self.stats.load_state_dict(state["stats"])
        self.generator.set_state(state["generator"])
        self.rounds = [SplitRecord(**r) for r in state["rounds"]]


def splat_data(template: SplatData, origin: Tensor, tensors: PerGaussian) -> SplatData:
    """The input's PLY rows ``origin`` (every property, in file order and dtype) with the current geometry
    written back: positions, rotations and log-scales. Colours and opacity are the caller's to write."""
    vertices = template.vertices[origin.cpu().numpy()]
    vertices.setflags(write=False)
    rows = SplatData(template.header.with_vertex_count(len(vertices)), vertices)
    columns = {}
    for key in ("means", "quats", "log_scales"):
        values = tensors[key].detach().to("cpu", torch.float32).numpy()
        columns.update({name: values[:, i] for i, name in enumerate(COLUMNS[key])})
    return rows.with_columns(columns)
