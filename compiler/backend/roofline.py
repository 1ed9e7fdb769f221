"""The roofline bound of a program, from the model's shape and the target alone (docs/ARCHITECTURE.md, "How
performance is judged").

Place in the flow: beside the backend, read by the benchmarks to judge simulated cycles.  Every term is work no
schedule can avoid (int8 weights; rates from the Target):
    LIN   tokens * layers * (d_model * in_proj_out + d_inner * d_model) int8 MACs / lin_macs_per_cycle
    SSM   tokens * layers * nheads * headdim * d_state / ssm_elems_per_cycle
    CONV  tokens * layers * conv_dim / conv_channels
    DDR   the layers' int8 weight bytes (every in_proj and out_proj, read once) / dma_bytes_per_cycle
    head  LIN: d_model * vocab MACs for the last position only; its weight bytes are d_model * vocab as well
    state the recurrent states a step reads and writes back: 2 * layers * (nheads * headdim * d_state * 4 bytes
          of int32 SSM state + (d_conv - 1) * conv_dim * 2 bytes of int16 conv state), the runner's contract
The head is serial: its input exists only after the last layer, so of its weight bytes at most the on-chip
buffer's size can be fetched while the layers run; the rest is DDR time after them.  Hence
    prefill bound = max(LIN, SSM, CONV, DDR) + max(head LIN, max(0, head bytes - buffer bytes) / bytes per cycle)
    decode bound  = (layer weight bytes + head bytes + state bytes) / bytes per cycle   (one token)
Prefill is judged by cycles / prefill bound, decode by tokens/s / (clock / decode bound).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastmamba.compiler.config import Mamba2Config
from fastmamba.compiler.runner import _STATE_KINDS
from fastmamba.isa.container import dtype_itemsize
from fastmamba.isa.target import Target

__all__ = ["Roofline", "roofline"]


@dataclass(frozen=True)
class Roofline:
    """The terms of the bound for `tokens` tokens of one model on one target, in cycles (bytes where named so)."""

    tokens: int
    lin: float  # the layers' LIN cycles
    ssm: float
    conv: float
    ddr: float  # the layers' weight bytes / bytes per cycle
    head_lin: float  # the head's LIN cycles (one position)
    head_ddr: float  # the head's weight bytes beyond the on-chip buffer / bytes per cycle
    weight_bytes: int  # the layers' int8 weights
    head_bytes: int  # the head's int8 weights
    state_bytes: int  # recurrent state bytes a step reads and writes back (both directions counted)
    dma_bytes_per_cycle: float

    @property
    def layers(self) -> float:
        """The layers' bound: the busiest of LIN, SSM, CONV and DDR."""
        return max(self.lin, self.ssm, self.conv, self.ddr)

    @property
    def limiter(self) -> str:
        """Which of LIN, SSM, CONV and DDR sets `layers`."""
        terms = {"LIN": self.lin, "SSM": self.ssm, "CONV": self.conv, "DDR": self.ddr}
        return max(terms, key=lambda k: terms[k])

    @property
    def head(self) -> float:
        """The head after the last layer: its LIN cycles or its weight stream beyond the buffer, whichever is longer."""
        return max(self.head_lin, self.head_ddr)

    @property
    def prefill(self) -> float:
        """The prefill bound in cycles: the layers, then the head."""
        return self.layers + self.head

    @property
    def state_ddr(self) -> float:
        """DDR cycles of the recurrent state traffic of one step."""
        return self.state_bytes / self.dma_bytes_per_cycle

    @property
    def decode(self) -> float:
        """The decode bound in cycles per token: DDR time of every weight (layers and head) and the state traffic."""
        return (self.weight_bytes + self.head_bytes + self.state_bytes) / self.dma_bytes_per_cycle

    def as_dict(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "lin": self.lin, "ssm": self.ssm, "conv": self.conv, "ddr": self.ddr,
                "layers": self.layers, "limiter": self.limiter, "head_lin": self.head_lin, "head_ddr": self.head_ddr,
                "head": self.head, "prefill_bound": self.prefill, "state_ddr": self.state_ddr,
                "decode_bound": self.decode, "weight_bytes": self.weight_bytes, "head_bytes": self.head_bytes,
                "state_bytes": self.state_bytes}


def roofline(config: Mamba2Config, tokens: int, target: Target) -> Roofline:
    """The bound's terms for a program over `tokens` positions (1 for the decode step)."""
    c = config
    nheads = c.nheads
    assert nheads is not None  # Mamba2Config derives it when not given
    per = target.dma_bytes_per_cycle
    layer_macs = c.d_model * c.in_proj_out + c.d_inner * c.d_model
    head_macs = c.d_model * c.vocab_size
    weight_bytes = c.n_layer * layer_macs  # int8: one byte per MAC of one position
    head_bytes = head_macs
    conv_dtype, _ = _STATE_KINDS["conv"]
    ssm_dtype, _ = _STATE_KINDS["ssm"]
    state_one_way = c.n_layer * ((c.d_conv - 1) * c.conv_dim * dtype_itemsize(conv_dtype)
                                 + nheads * c.headdim * c.d_state * dtype_itemsize(ssm_dtype))
    return Roofline(
        tokens=tokens,
        lin=tokens * c.n_layer * layer_macs / target.lin_macs_per_cycle,
        ssm=tokens * c.n_layer * nheads * c.headdim * c.d_state / target.ssm_elems_per_cycle,
        conv=tokens * c.n_layer * c.conv_dim / target.conv_channels,
        ddr=weight_bytes / per,
        head_lin=head_macs / target.lin_macs_per_cycle,
        head_ddr=max(0, head_bytes - target.buffer_bytes) / per,
        weight_bytes=weight_bytes,
        head_bytes=head_bytes,
        state_bytes=2 * state_one_way,
        dma_bytes_per_cycle=per,
    )
