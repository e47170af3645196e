"""The InTI layer (docs/model.md): halve the frames by blending neighbour-frame token pairs."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from inti_export.models import compute_mode
from inti_export.plugins.reference import token_interpolate_reference


class ContextProjection(nn.Sequential):
    """phi(z) = GELU(Linear_{D->D'}(LayerNorm(z)))."""

    def __init__(self, dim: int, context_dim: int):
        super().__init__(nn.LayerNorm(dim), nn.Linear(dim, context_dim), nn.GELU())


class GlobalContext(nn.Module):
    """Appendix B: (conv1d, maxpool/2, GELU) x2, conv1d, mean over time, GELU, Linear_{D->2D'}."""

    def __init__(self, dim: int, context_dim: int, ceil_mode: bool = True):
        super().__init__()
        conv = lambda: nn.Conv1d(dim, dim, 3, stride=1, padding=1, groups=dim)  # noqa: E731
        self.conv1, self.conv2, self.conv3 = conv(), conv(), conv()
        self.pool = nn.MaxPool1d(2, ceil_mode=ceil_mode)
        self.proj = nn.Linear(dim, 2 * context_dim)

    def forward(self, cls: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, 2D')
        z = cls.transpose(1, 2)  # (B, D, T)
        z = F.gelu(self.pool(self.conv1(z)))  # (B, D, T/2)
        z = F.gelu(self.pool(self.conv2(z)))  # (B, D, T/4)
        z = F.gelu(self.conv3(z).mean(dim=2))  # (B, D)
        return self.proj(z)  # (B, 2D')


class InTILayer(nn.Module):
    """One InTI layer on `frames_in` frames of `(1 + grid*grid)` tokens of width `dim`."""

    def __init__(
        self,
        dim: int,
        frames_in: int,
        grid: int,
        context_dim: int | None = None,
        global_pool_ceil: bool = True,
        temporal_pos_std: float = 0.02,
    ):
        super().__init__()
        if frames_in % 2:
            raise ValueError(f"an InTI layer needs an even frame count, got frames_in={frames_in}")
        dc = context_dim or dim
        self.dim, self.context_dim, self.frames_in, self.grid = dim, dc, frames_in, grid
        # Eq. 8: temporal position embedding behind a zero-initialised gate.
        self.temporal_pos = nn.Parameter(torch.randn(frames_in, dim) * temporal_pos_std)  # (T_in, D)
        self.gate = nn.Parameter(torch.zeros(()))  # gamma
        self.phi_token = ContextProjection(dim, dc)
        self.phi_cube = ContextProjection(dim, dc)
        self.cube_conv = nn.Conv3d(dc, dc, 3, padding=1, groups=dc)
        self.phi_frame = ContextProjection(dim, dc)
        self.global_context = GlobalContext(dim, dc, ceil_mode=global_pool_ceil)
        # Eq. 13: weight head; the last layer starts at zero so a fresh layer averages neighbours.
        self.head_fc1 = nn.Linear(4 * dc, dim)
        self.head_fc2 = nn.Linear(dim, 2)
        nn.init.zeros_(self.head_fc2.weight)
        nn.init.zeros_(self.head_fc2.bias)

    @property
    def frames_out(self) -> int:
        return self.frames_in // 2

    @staticmethod
    def pair(z: torch.Tensor) -> torch.Tensor:
        """(B, T, N, C) -> (B, T/2, N, 2C): the two frames of each pair side by side."""
        b, t, n, c = z.shape
        return z.reshape(b, t // 2, 2, n, c).transpose(2, 3).reshape(b, t // 2, n, 2 * c)

    def context(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, N, D) -> (B, T/2, N, 4D')
        """The fused four-level context `h` of docs/model.md steps 3-4 ("Sep" fusion)."""
        bsz, t = x.shape[:2]
        g, dc = self.grid, self.context_dim
        f_tok = self.pair(self.phi_token(x))  # (B, T/2, N, 2D')
        c = self.phi_cube(x[:, :, 1:])  # (B, T, N-1, D') patch tokens only
        c = c.permute(0, 3, 1, 2).reshape(bsz, dc, t, g, g)  # (B, D', T, g, g)
        c = self.cube_conv(c).reshape(bsz, dc, t, g * g).permute(0, 2, 3, 1)  # (B, T, N-1, D')
        c = F.pad(c, (0, 0, 1, 0))  # (B, T, N, D'), zero at the class-token position
        f_cube = self.pair(c)  # (B, T/2, N, 2D')
        cls = x[:, :, 0]  # (B, T, D)
        f_frame = self.pair(self.phi_frame(cls).unsqueeze(2))  # (B, T/2, 1, 2D')
        f_glob = self.global_context(cls)[:, None, None, :]  # (B, 1, 1, 2D')
        return torch.cat([f_tok, f_cube + f_frame + f_glob], dim=-1)  # (B, T/2, N, 4D')

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B*T, N, D) -> (B*T/2, N, D)
        n, d = x.shape[1], x.shape[2]
        x = x.reshape(-1, self.frames_in, n, d)  # (B, T, N, D)
        x = x + self.gate * self.temporal_pos[None, :, None, :]
        pairs = x.reshape(-1, self.frames_out, 2, n, d)
        a, b = pairs[:, :, 0], pairs[:, :, 1]  # (B, T/2, N, D) each
        h = self.context(x)  # (B, T/2, N, 4D')
        y = self.blend(h, a, b)  # (B, T/2, N, D)
        return y.reshape(-1, n, d)

    def blend(self, h: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Steps 5-6: weight head, softmax over the pair, weighted blend."""
        weights = (self.head_fc1.weight, self.head_fc1.bias, self.head_fc2.weight, self.head_fc2.bias)
        if compute_mode.current().blend_op:
            from inti_export.plugins import torch_op as op  # registers torch.ops.inti.token_interpolate

            return op.token_interpolate(h, a, b, *weights)
        return token_interpolate_reference(h, a, b, *weights)

    def interpolation_weights(self, x: torch.Tensor) -> torch.Tensor:
        """(B*T, N, D) -> (B, T/2, N, 2): the softmax weights (w_a, w_b), for tests and analysis."""
        n, d = x.shape[1], x.shape[2]
        x = x.reshape(-1, self.frames_in, n, d) + self.gate * self.temporal_pos[None, :, None, :]
        h = self.context(x)
        logits = self.head_fc2(F.gelu(self.head_fc1(h)))
        return logits.softmax(dim=-1)
