"""Gaussians: a scene's parameters as torch tensors, the form the renderer and the optimizer use."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from interchange.ply import SplatData


@dataclass
class Gaussians:
    """Raw 3DGS parameters of N Gaussians (activation happens in ``core.render``).

    means [N, 3], quats [N, 4] (w, x, y, z, not necessarily unit), log_scales [N, 3],
    opacity_logits [N], sh [N, (d+1)^2, 3] (gsplat layout: coefficient-major, channel last).
    """

    means: torch.Tensor
    quats: torch.Tensor
    log_scales: torch.Tensor
    opacity_logits: torch.Tensor
    sh: torch.Tensor

    @property
    def count(self) -> int:
        return self.means.shape[0]

    @property
    def sh_degree(self) -> int:
        return int(round(self.sh.shape[1] ** 0.5)) - 1

    @property
    def device(self) -> torch.device:
        return self.means.device

    def to(self, device: torch.device | str) -> Gaussians:
        """A copy on another device."""
        return Gaussians(*(t.to(device) for t in self._tensors()))

    def with_sh(self, sh: torch.Tensor) -> Gaussians:
        return replace(self, sh=sh)

    def _tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.means, self.quats, self.log_scales, self.opacity_logits, self.sh)

    @classmethod
    def from_splat_data(cls, data: SplatData, device: torch.device | str = "cpu") -> Gaussians:
        """Tensors (float32) of a PLY scene; the PLY's other properties stay in ``data``."""
        sh = np.concatenate([data.sh_dc()[:, None, :], data.sh_rest()], axis=1)
        arrays = (data.means(), data.quats(), data.log_scales(), data.opacity(), sh)
        return cls(*(torch.as_tensor(np.ascontiguousarray(a, dtype=np.float32), device=device) for a in arrays))

    def to_splat_data(self, template: SplatData) -> SplatData:
        """``template`` with this scene's colours (all SH bands) and opacities written back; the rest untouched."""
        sh = self.sh.detach().to("cpu", torch.float32).numpy()
        out = template.with_sh(sh[:, 0, :], sh[:, 1:, :])
        return out.with_opacity(self.opacity_logits.detach().to("cpu", torch.float32).numpy())
