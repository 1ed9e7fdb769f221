"""The `fastmamba::*` torch.library custom ops: the units of the canonical export form.

Place in the flow: the bottom of the frontend.  `compiler.frontend.canonical`
writes each Mamba2 program in terms of these ops so that torch.export keeps
the pieces the accelerator runs as units whole (one FX node each, imported by
torch-mlir as `torch.operator "torch.fastmamba.<name>"`), instead of the
chunked einsum/cumsum/tril graph transformers exports.  Each op has a real
implementation (plain PyTorch, float32/float64, so the exported program still
runs) and a fake one (shapes only, so export traces on the meta device).

Layouts are batch-free (the accelerator runs one sequence), T = tokens:
    rmsnorm(x [T,D], weight [D], eps)                            -> [T,D]
    gated_rmsnorm(y [T,E], z [T,E], weight [E], group_size, eps) -> RMSNorm per group of y*silu(z), times weight
    causal_conv1d(x [T,C], weight [C,1,K], bias [C]?, state [C,K-1]?) -> (y [T,C], state [C,K-1])
    ssm_scan(x [T,H*P], dt [T,H], A_log [H], B [T,G*N], C [T,G*N], D [H], state [H,P,N]?, ngroups)
                                                                 -> (y [T,H*P], state [H,P,N])
    ssm_step(x [1,H*P], dt [1,H], A_log [H], B [1,G*N], C [1,G*N], D [H], state [H,P,N])
                                                                 -> (y [1,H*P], state [H,P,N])
    lm_head(x [T,D], weight [V,D])                               -> [T,V]
In the SSM, dt is already softplus(dt + dt_bias), A = -exp(A_log), head h
reads group h // (H/G), and y = C . state + D * x after the update
state = exp(dt*A) * state + dt * x (outer) B.  A missing state means zeros.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

NAMESPACE = "fastmamba"


@torch.library.custom_op(f"{NAMESPACE}::rmsnorm", mutates_args=())
def rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


@rmsnorm.register_fake
def _(x, weight, eps):
    return torch.empty_like(x)


@torch.library.custom_op(f"{NAMESPACE}::gated_rmsnorm", mutates_args=())
def gated_rmsnorm(y: torch.Tensor, z: torch.Tensor, weight: torch.Tensor, group_size: int, eps: float) -> torch.Tensor:
    g = y * F.silu(z)
    grouped = g.reshape(*g.shape[:-1], g.shape[-1] // group_size, group_size)
    grouped = grouped * torch.rsqrt(grouped.pow(2).mean(-1, keepdim=True) + eps)
    return grouped.reshape(g.shape) * weight


@gated_rmsnorm.register_fake
def _(y, z, weight, group_size, eps):
    return torch.empty_like(y)


@torch.library.custom_op(f"{NAMESPACE}::causal_conv1d", mutates_args=())
def causal_conv1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                  state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    channels, _, kernel = weight.shape
    if state is None:
        state = x.new_zeros(channels, kernel - 1)
    window = torch.cat([state, x.transpose(0, 1)], dim=1)  # [C, K-1+T], oldest first
    y = F.conv1d(window[None], weight, bias, groups=channels)[0]  # [C, T]
    return y.transpose(0, 1).contiguous(), window[:, window.shape[1] - (kernel - 1):].clone()


@causal_conv1d.register_fake
def _(x, weight, bias, state):
    channels, _, kernel = weight.shape
    return torch.empty_like(x), x.new_empty(channels, kernel - 1)


def _heads(x, dt, B, ngroups):
    length, nheads = dt.shape
    headdim = x.shape[1] // nheads
    d_state = B.shape[1] // ngroups
    return length, nheads, headdim, d_state


def _per_head(v: torch.Tensor, ngroups: int, nheads: int) -> torch.Tensor:
    """[T, G*N] -> [T, H, N]: head h reads group h // (H/G)."""
    length = v.shape[0]
    return v.reshape(length, ngroups, 1, -1).expand(length, ngroups, nheads // ngroups, v.shape[1] // ngroups) \
        .reshape(length, nheads, -1)


def _scan(x, dt, A_log, B, C, D, state, ngroups):
    length, nheads, headdim, d_state = _heads(x, dt, B, ngroups)
    xh = x.reshape(length, nheads, headdim)
    Bh, Ch = _per_head(B, ngroups, nheads), _per_head(C, ngroups, nheads)
    decay = torch.exp(dt * -torch.exp(A_log))  # [T, H]
    if state is None:
        state = x.new_zeros(nheads, headdim, d_state)
    ys = []
    for t in range(length):
        state = decay[t, :, None, None] * state + (dt[t, :, None] * xh[t])[:, :, None] * Bh[t, :, None, :]
        ys.append((state * Ch[t, :, None, :]).sum(-1) + D[:, None] * xh[t])
    y = torch.stack(ys).reshape(length, nheads * headdim) if ys else x.new_empty(0, nheads * headdim)
    return y, state.clone()


@torch.library.custom_op(f"{NAMESPACE}::ssm_scan", mutates_args=())
def ssm_scan(x: torch.Tensor, dt: torch.Tensor, A_log: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
             D: torch.Tensor, state: torch.Tensor | None, ngroups: int) -> tuple[torch.Tensor, torch.Tensor]:
    return _scan(x, dt, A_log, B, C, D, state, ngroups)


@ssm_scan.register_fake
def _(x, dt, A_log, B, C, D, state, ngroups):
    _, nheads, headdim, d_state = _heads(x, dt, B, ngroups)
    return torch.empty_like(x), x.new_empty(nheads, headdim, d_state)


@torch.library.custom_op(f"{NAMESPACE}::ssm_step", mutates_args=())
def ssm_step(x: torch.Tensor, dt: torch.Tensor, A_log: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
             D: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return _scan(x, dt, A_log, B, C, D, state, B.shape[1] // state.shape[2])


@ssm_step.register_fake
def _(x, dt, A_log, B, C, D, state):
    return torch.empty_like(x), torch.empty_like(state)


@torch.library.custom_op(f"{NAMESPACE}::lm_head", mutates_args=())
def lm_head(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return x @ weight.transpose(0, 1)


@lm_head.register_fake
def _(x, weight):
    return x.new_empty(x.shape[0], weight.shape[0])
