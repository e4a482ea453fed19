"""How a result's coverage compares with the capture's: spill outside the capture's silhouette and coverage lost
inside it.

Detail moves positions and scales. A Gaussian that grows or drifts covers pixels the capture left empty (floaters,
streaks, glow around an object on black); one that shrinks away leaves holes. Both are measured per view against
the capture's own render, as fractions of the capture's covered area (Σ α_capture), so the numbers mean the same on
an object on black and on a full scene:

- spill = Σ max(α − α_capture, 0) over pixels the capture covers less than half (``SILHOUETTE_ALPHA``) / Σ α_capture
- lost  = Σ max(α_capture − α, 0) over pixels the capture covers at least half / Σ α_capture

The stylization guard (core.stylization) and the benchmarks' judge (bench/quality.py, bench/densify.py) use these.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

SILHOUETTE_ALPHA = 0.5
"""A pixel is inside the capture's silhouette when the capture covers at least this much of it."""
SPILL_LIMIT = 0.01
"""Most spill a run may ship with (1 % of the capture's covered area, averaged over the views): beyond it the
geometry guard rolls positions and scales back (docs/sos_loss.md, "Detail")."""


@dataclass(frozen=True)
class CoverageChange:
    """Spill and lost coverage of one or more views (fractions of the capture's covered area)."""

    spill: float
    lost: float


def coverage_sums(alpha: torch.Tensor, capture: torch.Tensor) -> torch.Tensor:
    """[3] (spilled, lost, covered) sums of one view: ``alpha`` and ``capture`` are the result's and the capture's
    coverage of the same view, any matching shape."""
    alpha, capture = alpha.detach().float(), capture.detach().float()
    inside = capture >= SILHOUETTE_ALPHA
    spilled = torch.where(inside, 0.0, (alpha - capture).clamp_min(0)).sum()
    lost = torch.where(inside, (capture - alpha).clamp_min(0), 0.0).sum()
    return torch.stack([spilled, lost, capture.sum()])


def coverage_change(sums: torch.Tensor) -> CoverageChange:
    """Spill and lost coverage from ``coverage_sums`` added over views (an empty capture: no change measured)."""
    spilled, lost, covered = (float(v) for v in sums)
    if covered <= 0:
        return CoverageChange(0.0, 0.0)
    return CoverageChange(spilled / covered, lost / covered)
