"""A Mamba2 model tree built from a config alone: what the frontend exports from a checkpoint directory.

Place in the flow: the frontend's stand-in for transformers' module tree.
`Mamba2Skeleton(config)` has the attributes and parameter names of
`Mamba2ForCausalLM` (so `compiler.frontend.canonical` rebinds it exactly as it
rebinds a live transformers model), but its modules carry no forward of
their own and its parameters live on the meta device: exporting it reads no
weight bytes, which is how a 2.7B-parameter model imports in little memory.
`load_weights` fills it from a `WeightStore` when the program should run in
PyTorch.  transformers is not needed.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from fastmamba.compiler.config import Mamba2Config

__all__ = ["Mamba2Skeleton", "load_weights"]


def _param(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.empty(*shape, device="meta"), requires_grad=False)


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float):
        super().__init__()
        self.weight = _param(size)
        self.variance_epsilon = eps


class GatedRMSNorm(RMSNorm):
    def __init__(self, size: int, group_size: int, eps: float):
        super().__init__(size, eps)
        self.group_size = group_size


class _Linear(nn.Module):
    def __init__(self, rows: int, cols: int):
        super().__init__()
        self.weight = _param(rows, cols)


class _Conv(nn.Module):
    def __init__(self, channels: int, kernel: int, bias: bool):
        super().__init__()
        self.weight = _param(channels, 1, kernel)
        self.bias = _param(channels) if bias else None


class Mixer(nn.Module):
    def __init__(self, c: Mamba2Config):
        super().__init__()
        self.in_proj = _Linear(c.in_proj_out, c.d_model)
        self.conv1d = _Conv(c.conv_dim, c.d_conv, c.use_conv_bias)
        self.dt_bias = _param(c.nheads)
        self.A_log = _param(c.nheads)
        self.D = _param(c.nheads)
        self.norm = GatedRMSNorm(c.d_inner, c.norm_group_size, c.gated_norm_eps)
        self.out_proj = _Linear(c.d_model, c.d_inner)


class _Block(nn.Module):
    def __init__(self, c: Mamba2Config):
        super().__init__()
        self.norm = RMSNorm(c.d_model, c.norm_eps)
        self.mixer = Mixer(c)


class _Backbone(nn.Module):
    def __init__(self, c: Mamba2Config):
        super().__init__()
        self.embeddings = nn.Embedding(c.vocab_size, c.d_model, device="meta")
        self.embeddings.weight.requires_grad_(False)
        self.layers = nn.ModuleList(_Block(c) for _ in range(c.n_layer))
        self.norm_f = RMSNorm(c.d_model, c.norm_eps)


class Mamba2Skeleton(nn.Module):
    """transformers' Mamba2ForCausalLM tree (names and shapes), parameters on the meta device."""

    def __init__(self, config: Mamba2Config):
        super().__init__()
        self.config = config
        self.backbone = _Backbone(config)
        if not config.tie_embeddings:
            self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False, device="meta")
            self.lm_head.weight.requires_grad_(False)


def load_weights(skeleton: Mamba2Skeleton, weights: Mapping[str, torch.Tensor],
                 dtype: torch.dtype = torch.float32) -> Mamba2Skeleton:
    """Give every parameter of `skeleton` its value from `weights` (a WeightStore), in `dtype`."""
    for name, _ in list(skeleton.named_parameters()):
        module_path, _, attr = name.rpartition(".")
        module = skeleton.get_submodule(module_path)
        setattr(module, attr, nn.Parameter(weights[name].to(dtype), requires_grad=False))
    return skeleton
