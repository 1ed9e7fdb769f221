"""The roofline bound of a program, from the model's shape and the target alone (DESIGN §9).

Place in the flow: beside the backend, read by `fastmamba run` and the
benchmarks to judge simulated cycles.  For `tokens` tokens through every layer
and the head on the last position only:
    LIN   tokens * layers * (d_model * in_proj_out + d_inner * d_model) + d_model * vocab   int8 MACs / lin_macs_per_cycle
    SSM   tokens * layers * nheads * headdim * d_state / ssm_elems_per_cycle
    CONV  tokens * layers * conv_dim / conv_channels
    DDR   the int8 weight bytes read once (every in_proj, out_proj and the head) / dma_bytes_per_cycle
The bound is the largest.  `state_bytes` (the recurrent states a program reads
and writes in DDR) is reported beside it: DESIGN §9 leaves it out of the bound.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastmamba.compiler.config import Mamba2Config

__all__ = ["Roofline", "roofline"]


@dataclass(frozen=True)
class Roofline:
    lin: float
    ssm: float
    conv: float
    ddr: float
    weight_bytes: int
    state_bytes: int  # one copy of every layer's conv and SSM state (a program reads and writes each)

    @property
    def bound(self) -> float:
        return max(self.lin, self.ssm, self.conv, self.ddr)

    @property
    def limiter(self) -> str:
        return max(("LIN", self.lin), ("SSM", self.ssm), ("CONV", self.conv), ("DDR", self.ddr), key=lambda kv: kv[1])[0]

    def as_dict(self) -> dict:
        return {"lin": self.lin, "ssm": self.ssm, "conv": self.conv, "ddr": self.ddr, "bound": self.bound,
                "limiter": self.limiter, "weight_bytes": self.weight_bytes, "state_bytes": self.state_bytes}


def roofline(config: Mamba2Config, tokens: int, target) -> Roofline:
    c = config
    layer_macs = c.d_model * c.in_proj_out + c.d_inner * c.d_model
    head_macs = c.d_model * c.vocab_size
    lin = (tokens * c.n_layer * layer_macs + head_macs) / target.lin_macs_per_cycle
    ssm = tokens * c.n_layer * c.nheads * c.headdim * c.d_state / target.ssm_elems_per_cycle
    conv = tokens * c.n_layer * c.conv_dim / target.conv_channels
    weight_bytes = c.n_layer * layer_macs + head_macs
    ddr = weight_bytes / target.dma_bytes_per_cycle
    state_bytes = c.n_layer * ((c.d_conv - 1) * c.conv_dim * 2 + c.nheads * c.headdim * c.d_state * 4)
    return Roofline(lin, ssm, conv, ddr, weight_bytes, state_bytes)
