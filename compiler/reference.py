"""FP32 reference Mamba2: the language model as the sequential recurrence.

Place in the flow: reference (1) of docs/ARCHITECTURE.md §4.  It reads a `Mamba2Config`
and a `WeightStore` (compiler.checkpoint) and nothing else of fastmamba; the
quantized golden model and the simulator are measured against it, and it is
itself checked against transformers' Mamba2ForCausalLM (tests/test_reference.py).

Per layer, on the residual stream u (mamba_ssm's Mamba2 with rmsnorm=True,
norm_before_gate=False, no projection biases):
    h            = RMSNorm(u) * norm.weight
    z | xBC | dt = h @ in_proj.weight^T                (d_inner | conv_dim | nheads)
    xBC          = SiLU(causal depthwise conv1d(xBC) + conv1d.bias)
    x | B | C    = xBC                                 (d_inner | ngroups*d_state | ngroups*d_state)
    dt           = softplus(dt + dt_bias);  A = -exp(A_log)
    state        = exp(dt*A) * state + dt * (x outer B)      per head, B/C shared by heads_per_group heads
    y            = state . C + D * x
    y            = GroupRMSNorm(y * SiLU(z)) * mixer.norm.weight   (groups of d_inner/ngroups)
    u            = u + y @ out_proj.weight^T
then RMSNorm(u) * norm_f.weight and the head (the embedding if tied).

States (one `LayerState` per layer):
    conv [batch, conv_dim, d_conv-1]: the last d_conv-1 conv inputs, oldest first
    ssm  [batch, nheads, headdim, d_state]
A fresh sequence starts from zeros.  `prefill` runs each layer over all
tokens at once (projections and conv as tensor ops) and loops over time only
inside the SSM scan; `decode_step` advances one token.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fastmamba.compiler.checkpoint import WeightStore, head_weight_name
from fastmamba.compiler.config import Mamba2Config
from fastmamba.isa.errors import InputError

__all__ = ["LayerState", "Mamba2Reference", "one_thread"]

# The scan keeps the states of a block of steps (for y = C . state) in one reused buffer: at most
# _SCAN_BLOCK_STEPS steps and _SCAN_BUFFER_ELEMENTS elements (small blocks stay in cache and are fastest).
_SCAN_BLOCK_STEPS = 16
_SCAN_BUFFER_ELEMENTS = 1 << 22


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread inside the block, as the commands do around the reference.

    The time loop is many small tensor ops: one thread runs them fastest, and
    several threads collapse when the cores are busy (4096 tokens of the
    bundled shape: 1.5 s on 1 thread, 15 s on 2 beside a competing process).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass(frozen=True)
class LayerState:
    """Recurrent state of one layer after some tokens."""

    conv: torch.Tensor  # [batch, conv_dim, d_conv - 1]
    ssm: torch.Tensor  # [batch, nheads, headdim, d_state]


@dataclass(frozen=True)
class _LayerWeights:
    norm: torch.Tensor
    in_proj: torch.Tensor
    conv_weight: torch.Tensor  # [conv_dim, d_conv]
    conv_bias: torch.Tensor | None
    dt_bias: torch.Tensor
    A: torch.Tensor  # -exp(A_log)
    D: torch.Tensor
    gated_norm: torch.Tensor
    out_proj: torch.Tensor


def _rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


class Mamba2Reference:
    """Mamba2 language model in float32 (or float64) as a recurrence."""

    def __init__(self, config: Mamba2Config, weights: WeightStore, dtype: torch.dtype = torch.float32):
        if dtype not in (torch.float32, torch.float64):
            raise InputError(f"reference dtype must be float32 or float64, not {dtype}")
        self.config = config
        self.dtype = dtype

        def w(name: str) -> torch.Tensor:
            return weights[name].to(dtype)

        self.embedding = w("backbone.embeddings.weight")
        self.head = self.embedding if config.tie_embeddings else w(head_weight_name(config))
        self.norm_f = w("backbone.norm_f.weight")
        self.layers = []
        for i in range(config.n_layer):
            p = f"backbone.layers.{i}."
            self.layers.append(_LayerWeights(
                norm=w(p + "norm.weight"),
                in_proj=w(p + "mixer.in_proj.weight"),
                conv_weight=w(p + "mixer.conv1d.weight")[:, 0, :],
                conv_bias=w(p + "mixer.conv1d.bias") if config.use_conv_bias else None,
                dt_bias=w(p + "mixer.dt_bias"),
                A=-torch.exp(w(p + "mixer.A_log")),
                D=w(p + "mixer.D"),
                gated_norm=w(p + "mixer.norm.weight"),
                out_proj=w(p + "mixer.out_proj.weight"),
            ))

    # --- states -------------------------------------------------------
    def empty_states(self, batch: int = 1) -> list[LayerState]:
        c = self.config
        return [LayerState(conv=torch.zeros(batch, c.conv_dim, c.d_conv - 1, dtype=self.dtype),
                           ssm=torch.zeros(batch, c.nheads, c.headdim, c.d_state, dtype=self.dtype))
                for _ in range(c.n_layer)]

    def _check_tokens(self, tokens: torch.Tensor) -> None:
        if tokens.dtype not in (torch.int64, torch.int32):
            raise InputError(f"tokens must be an integer tensor, not {tokens.dtype}")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.config.vocab_size):
            raise InputError(f"token ids must lie in [0, {self.config.vocab_size}); got "
                             f"{int(tokens.min())}..{int(tokens.max())}")

    def _check_states(self, states: list[LayerState], batch: int) -> None:
        c = self.config
        if len(states) != c.n_layer:
            raise InputError(f"expected {c.n_layer} layer states, got {len(states)}")
        for s in states:
            if tuple(s.conv.shape) != (batch, c.conv_dim, c.d_conv - 1) or tuple(s.ssm.shape) != (batch, c.nheads,
                                                                                                  c.headdim, c.d_state):
                raise InputError(f"layer state shapes {list(s.conv.shape)}, {list(s.ssm.shape)} do not fit batch "
                                 f"{batch}")
            if s.conv.dtype != self.dtype or s.ssm.dtype != self.dtype:
                raise InputError(f"layer states must be {self.dtype}, got {s.conv.dtype} and {s.ssm.dtype}")

    # --- entry points -------------------------------------------------
    @torch.no_grad()
    def prefill(self, tokens: torch.Tensor, states: list[LayerState] | None = None) -> tuple[torch.Tensor,
                                                                                             list[LayerState]]:
        """Logits [batch, L, vocab] for every position of `tokens` [batch, L] and the states after them.

        `states` continues a sequence (as from an earlier prefill or decode
        step); None starts a fresh one.
        """
        if tokens.dim() != 2:
            raise InputError(f"tokens must have shape [batch, length], got {list(tokens.shape)}")
        self._check_tokens(tokens)
        batch = tokens.shape[0]
        states = self.empty_states(batch) if states is None else states
        self._check_states(states, batch)
        return self._run_layers(self.embedding[tokens], states, self._mixer_sequence)

    @torch.no_grad()
    def decode_step(self, token: torch.Tensor, states: list[LayerState]) -> tuple[torch.Tensor, list[LayerState]]:
        """Logits [batch, vocab] for one token per sequence (`token` [batch]) and the advanced states."""
        if token.dim() != 1:
            raise InputError(f"token must have shape [batch], got {list(token.shape)}")
        self._check_tokens(token)
        self._check_states(states, token.shape[0])
        return self._run_layers(self.embedding[token], states, self._mixer_step)

    def _run_layers(self, u: torch.Tensor, states: list[LayerState], mixer) -> tuple[torch.Tensor, list[LayerState]]:
        """The residual stack over embeddings `u` with `mixer` (sequence or step), then the final norm and head."""
        new_states = []
        for layer, state in zip(self.layers, states):
            out, new_state = mixer(layer, _rmsnorm(u, layer.norm, self.config.norm_eps), state)
            u = u + out
            new_states.append(new_state)
        logits = _rmsnorm(u, self.norm_f, self.config.norm_eps) @ self.head.T
        return logits, new_states

    # --- the mixer ----------------------------------------------------
    def _split_projection(self, zxbcdt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c = self.config
        return torch.split(zxbcdt, [c.d_inner, c.conv_dim, c.nheads], dim=-1)

    def _ssm_inputs(self, layer: _LayerWeights, xBC: torch.Tensor, dt: torch.Tensor):
        """x [.., nheads, headdim], B and C [.., nheads, d_state] (repeated per group), dt after softplus."""
        c = self.config
        x, B, C = torch.split(xBC, [c.d_inner, c.ngroups * c.d_state, c.ngroups * c.d_state], dim=-1)
        lead = x.shape[:-1]
        x = x.reshape(*lead, c.nheads, c.headdim)
        B = B.reshape(*lead, c.ngroups, 1, c.d_state).expand(*lead, c.ngroups, c.heads_per_group, c.d_state)
        C = C.reshape(*lead, c.ngroups, 1, c.d_state).expand(*lead, c.ngroups, c.heads_per_group, c.d_state)
        B = B.reshape(*lead, c.nheads, c.d_state)  # head h reads group h // heads_per_group
        C = C.reshape(*lead, c.nheads, c.d_state)
        dt = F.softplus(dt + layer.dt_bias)
        return x, B, C, dt

    def _gate_and_project(self, layer: _LayerWeights, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        c = self.config
        g = y * F.silu(z)
        lead = g.shape[:-1]
        g = g.reshape(*lead, c.ngroups, c.norm_group_size)
        g = g * torch.rsqrt(g.pow(2).mean(-1, keepdim=True) + c.gated_norm_eps)
        g = g.reshape(*lead, c.d_inner) * layer.gated_norm
        return g @ layer.out_proj.T

    def _mixer_sequence(self, layer: _LayerWeights, h: torch.Tensor, state: LayerState):
        """One mixer over h [batch, L, d_model] from `state`."""
        c = self.config
        batch, length, _ = h.shape
        z, xBC, dt = self._split_projection(h @ layer.in_proj.T)

        # Causal depthwise conv, time-major: out[t] = bias + sum_k w[k] * in[t - (d_conv-1) + k],
        # the inputs before this call's first token coming from the state.
        window = torch.cat([state.conv.transpose(1, 2), xBC], dim=1)  # [batch, d_conv-1+L, conv_dim]
        taps = layer.conv_weight.T  # [d_conv, conv_dim]
        conv = window[:, :length] * taps[0]
        for k in range(1, c.d_conv):
            conv.addcmul_(window[:, k:k + length], taps[k])
        if layer.conv_bias is not None:
            conv += layer.conv_bias
        new_conv_state = window[:, window.shape[1] - (c.d_conv - 1):].transpose(1, 2)
        xBC = F.silu(conv)  # [batch, L, conv_dim]

        x, B, C, dt = self._ssm_inputs(layer, xBC, dt)
        decay = torch.exp(dt * layer.A)  # [batch, L, nheads]
        y = torch.empty(batch, length, c.nheads, c.headdim, dtype=self.dtype)
        block = max(1, min(_SCAN_BLOCK_STEPS, _SCAN_BUFFER_ELEMENTS // (batch * c.nheads * c.headdim * c.d_state)))
        states_t = torch.empty(block, batch, c.nheads, c.headdim, c.d_state, dtype=self.dtype)  # reused per block
        ssm = state.ssm
        for start in range(0, length, block):
            n = min(block, length - start)
            buf = states_t[:n]
            # buf[t] = dt[t] * x[t] outer B[t], then in place: buf[t] += exp(dt[t] A) * buf[t-1] (the recurrence).
            xdt = (x[:, start:start + n] * dt[:, start:start + n, :, None]).transpose(0, 1).reshape(-1, c.headdim, 1)
            Bt = B[:, start:start + n].transpose(0, 1).reshape(-1, 1, c.d_state)
            torch.mul(xdt, Bt, out=buf.view(-1, c.headdim, c.d_state))  # outer products, one per (t, batch, head)
            dA = decay[:, start:start + n].permute(1, 0, 2)[..., None, None]
            buf[0].addcmul_(ssm, dA[0])
            for t in range(1, n):  # one time step at a time
                buf[t].addcmul_(buf[t - 1], dA[t])
            y[:, start:start + n] = torch.einsum("tbhpn,bthn->bthp", buf, C[:, start:start + n])
            ssm = buf[n - 1].clone()
        y = y + layer.D[:, None] * x
        out = self._gate_and_project(layer, y.reshape(batch, length, c.d_inner), z)
        return out, LayerState(conv=new_conv_state.contiguous(), ssm=ssm)

    def _mixer_step(self, layer: _LayerWeights, h: torch.Tensor, state: LayerState):
        """One mixer for one token, h [batch, d_model]."""
        c = self.config
        z, xBC, dt = self._split_projection(h @ layer.in_proj.T)
        window = torch.cat([state.conv, xBC[:, :, None]], dim=2)  # [batch, conv_dim, d_conv]
        conv = (window * layer.conv_weight).sum(-1)
        if layer.conv_bias is not None:
            conv = conv + layer.conv_bias
        xBC = F.silu(conv)
        x, B, C, dt = self._ssm_inputs(layer, xBC, dt)  # x [batch, nheads, headdim], B/C [batch, nheads, d_state]
        decay = torch.exp(dt * layer.A)  # [batch, nheads]
        ssm = decay[:, :, None, None] * state.ssm + (dt[:, :, None] * x)[:, :, :, None] * B[:, :, None, :]
        y = (ssm * C[:, :, None, :]).sum(-1) + layer.D[:, None] * x
        out = self._gate_and_project(layer, y.reshape(-1, c.d_inner), z)
        return out, LayerState(conv=window[:, :, 1:].contiguous(), ssm=ssm)
