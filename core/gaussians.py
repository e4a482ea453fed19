"""Gaussians: a scene's parameters as torch tensors, the form the renderer and the optimizer use.

The field names are interchange.ply's vocabulary (``GAUSSIAN_VALUES``), the same words the PLY columns
(``interchange.ply.COLUMNS``), the optimizer's parameter groups and checkpoints use.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from interchange.ply import GAUSSIAN_VALUES, SplatData


@dataclass
class Gaussians:
    """Raw 3DGS parameters of N Gaussians (activation happens in ``core.renderer``).

    means [N, 3], quats [N, 4] (w, x, y, z, not necessarily unit), log_scales [N, 3], opacity [N] (logits),
    sh_dc [N, 1, 3] and sh_rest [N, (d+1)^2 - 1, 3] (gsplat layout: coefficient-major, channel last).
    """

    means: torch.Tensor
    quats: torch.Tensor
    log_scales: torch.Tensor
    opacity: torch.Tensor
    sh_dc: torch.Tensor
    sh_rest: torch.Tensor

    @classmethod
    def from_sh(cls, means: torch.Tensor, quats: torch.Tensor, log_scales: torch.Tensor, opacity: torch.Tensor,
                sh: torch.Tensor) -> Gaussians:
        """Gaussians from all SH coefficients in one tensor [N, (d+1)^2, 3] (split into DC and the rest)."""
        return cls(means, quats, log_scales, opacity, sh[:, :1], sh[:, 1:])

    @classmethod
    def from_values(cls, values: dict[str, torch.Tensor]) -> Gaussians:
        """Gaussians from their tensors by name (``values()``'s inverse)."""
        return cls(**{name: values[name] for name in GAUSSIAN_VALUES})

    def values(self) -> dict[str, torch.Tensor]:
        """The tensors by name, in ``GAUSSIAN_VALUES`` order."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def sh(self) -> torch.Tensor:
        """All SH coefficients [N, (d+1)^2, 3], as the rasterizers take them."""
        return torch.cat([self.sh_dc, self.sh_rest], dim=1)

    @property
    def count(self) -> int:
        return self.means.shape[0]

    @property
    def sh_degree(self) -> int:
        return int(round((1 + self.sh_rest.shape[1]) ** 0.5)) - 1

    @property
    def device(self) -> torch.device:
        return self.means.device

    def to(self, device: torch.device | str) -> Gaussians:
        """A copy on another device."""
        return Gaussians(*(t.to(device) for t in self.values().values()))

    def with_sh(self, sh: torch.Tensor) -> Gaussians:
        """These Gaussians with other SH coefficients [N, (d+1)^2, 3]."""
        return Gaussians.from_sh(self.means, self.quats, self.log_scales, self.opacity, sh)

    def rows(self, index: torch.Tensor) -> Gaussians:
        """The Gaussians ``index`` selects (a mask or row numbers; rows may repeat)."""
        return Gaussians(*(t[index] for t in self.values().values()))

    @classmethod
    def from_splat_data(cls, data: SplatData, device: torch.device | str = "cpu") -> Gaussians:
        """Tensors (float32) of a PLY scene; the PLY's other properties stay in ``data``."""
        # sh_dc by reshape, not [:, None]: numpy would give the new axis stride 0, which autograd's gradient
        # layout checks then warn about.
        arrays = (data.means(), data.quats(), data.log_scales(), data.opacity(), data.sh_dc().reshape(-1, 1, 3),
                  data.sh_rest())
        return cls(*(torch.as_tensor(np.ascontiguousarray(a, dtype=np.float32), device=device) for a in arrays))

    def to_splat_data(self, template: SplatData) -> SplatData:
        """``template`` with this scene's colours (all SH bands) and opacities written back; the rest untouched."""
        dc, rest, opacity = (t.detach().to("cpu", torch.float32).numpy() for t in (self.sh_dc, self.sh_rest,
                                                                                     self.opacity))
        return template.with_sh(dc[:, 0, :], rest).with_opacity(opacity)
