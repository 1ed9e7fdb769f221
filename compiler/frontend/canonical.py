"""The canonical export form: a Mamba2 model's two programs written with the fastmamba custom ops.

Place in the flow: first step of the frontend.  Given a model tree in
transformers' layout (a live `Mamba2ForCausalLM`, or our `Mamba2Skeleton`
built from a config), `canonical_form` rebinds the forward of every mixer,
RMSNorm and gated RMSNorm to one calling `compiler.frontend.custom_ops`, and
`PrefillProgram` / `DecodeProgram` wrap the tree as the two programs the
accelerator runs.  The user's model is not changed: the rebinding is undone
when the context ends.

Programs (batch 1, the batch dimension left out; states in `LayerState` order):
    prefill(tokens [L] int64)
        -> logits [1, vocab] (last position; all positions with all_logits),
           conv_0 [conv_dim, d_conv-1], ssm_0 [nheads, headdim, d_state], conv_1, ssm_1, ...
    decode(token [1] int64, conv_0, ssm_0, conv_1, ssm_1, ...)
        -> logits [1, vocab], conv_0', ssm_0', ...
Parameters keep their transformers names, so the exported program names each
weight exactly as the checkpoint's `WeightStore` does.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from fastmamba.compiler.config import PROGRAMS, Mamba2Config
from fastmamba.compiler.frontend import custom_ops as ops
from fastmamba.compiler.errors import ModelError

__all__ = ["canonical_form", "PrefillProgram", "DecodeProgram", "PROGRAMS", "check_model_tree"]



# --- the rebound forwards ---------------------------------------------------------------------------------------


def _rmsnorm_forward(self, x: torch.Tensor) -> torch.Tensor:
    return ops.rmsnorm(x, self.weight, float(self.variance_epsilon))


def _gated_rmsnorm_forward(self, y: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    return ops.gated_rmsnorm(y, gate, self.weight, int(self.group_size), float(self.variance_epsilon))


def _mixer_forward(self, h: torch.Tensor, conv_state: torch.Tensor | None = None,
                   ssm_state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One Mamba2 mixer on h [T, d_model]; returns (out [T, d_model], conv state, SSM state).

    With ssm_state given and T == 1 this is the decode step (ssm_step),
    otherwise a scan over T tokens (from zeros when the states are None).
    """
    c: Mamba2Config = self._fastmamba_config
    d_inner, conv_dim, bc = c.d_inner, c.conv_dim, c.ngroups * c.d_state
    zxbcdt = F.linear(h, self.in_proj.weight)
    z = zxbcdt[:, :d_inner]
    xBC = zxbcdt[:, d_inner:d_inner + conv_dim]
    dt = zxbcdt[:, d_inner + conv_dim:]
    xBC, conv_state = ops.causal_conv1d(xBC, self.conv1d.weight, self.conv1d.bias, conv_state)
    xBC = F.silu(xBC)
    x = xBC[:, :d_inner]
    B = xBC[:, d_inner:d_inner + bc]
    C = xBC[:, d_inner + bc:]
    dt = F.softplus(dt + self.dt_bias)
    if ssm_state is not None and h.shape[0] == 1:
        y, ssm_state = ops.ssm_step(x, dt, self.A_log, B, C, self.D, ssm_state)
    else:
        y, ssm_state = ops.ssm_scan(x, dt, self.A_log, B, C, self.D, ssm_state, c.ngroups)
    y = self.norm(y, z)
    return F.linear(y, self.out_proj.weight), conv_state, ssm_state


# --- the model tree ---------------------------------------------------------------------------------------------

_HF_MODULE = "transformers.models.mamba2.modeling_mamba2"
_SKELETON_MODULE = "fastmamba.compiler.frontend.skeleton"
_KINDS = {
    "Mamba2Mixer": "mixer", "Mamba2RMSNorm": "rmsnorm", "MambaRMSNormGated": "gated_rmsnorm",
    "Mixer": "mixer", "RMSNorm": "rmsnorm", "GatedRMSNorm": "gated_rmsnorm",
}
_FORWARDS = {"mixer": _mixer_forward, "rmsnorm": _rmsnorm_forward, "gated_rmsnorm": _gated_rmsnorm_forward}


def _kind(module: nn.Module, path: str, expected: str) -> str:
    cls = type(module)
    kind = _KINDS.get(cls.__name__) if cls.__module__ in (_HF_MODULE, _SKELETON_MODULE) else None
    if kind != expected:
        raise ModelError(f"unsupported module {path} ({cls.__module__}.{cls.__name__}); expected a Mamba2 {expected}")
    return kind


def _tree(model: nn.Module, config: Mamba2Config) -> Iterator[tuple[str, nn.Module, str]]:
    """(path, module, kind) of every module the canonical form rebinds, in program order."""
    backbone = getattr(model, "backbone", None)
    layers = getattr(backbone, "layers", None)
    if backbone is None or layers is None or not isinstance(getattr(backbone, "embeddings", None), nn.Embedding):
        raise ModelError(f"unsupported model {type(model).__name__}: expected backbone.embeddings and backbone.layers "
                         f"(transformers' Mamba2ForCausalLM layout)")
    if len(layers) != config.n_layer:
        raise ModelError(f"model has {len(layers)} layers but its config says n_layer={config.n_layer}")
    for i, layer in enumerate(layers):
        for name, expected in (("norm", "rmsnorm"), ("mixer", "mixer")):
            path = f"backbone.layers.{i}.{name}"
            module = getattr(layer, name, None)
            if module is None:
                raise ModelError(f"model has no module {path}")
            yield path, module, _kind(module, path, expected)
        gated = getattr(layer.mixer, "norm", None)
        path = f"backbone.layers.{i}.mixer.norm"
        if gated is None:
            raise ModelError(f"model has no module {path}")
        yield path, gated, _kind(gated, path, "gated_rmsnorm")
    norm_f = getattr(backbone, "norm_f", None)
    if norm_f is None:
        raise ModelError("model has no module backbone.norm_f")
    yield "backbone.norm_f", norm_f, _kind(norm_f, "backbone.norm_f", "rmsnorm")


def check_model_tree(model: nn.Module, config: Mamba2Config) -> None:
    """Raise ModelError naming the first module the canonical form does not support."""
    for _ in _tree(model, config):
        pass


@contextlib.contextmanager
def canonical_form(model: nn.Module, config: Mamba2Config) -> Iterator[nn.Module]:
    """Within the context, every mixer and norm of `model` runs (and exports) through the custom ops."""
    bound = list(_tree(model, config))
    saved = [(module, module.__dict__.get("forward")) for _, module, _ in bound]
    try:
        for _, module, kind in bound:
            module.forward = types.MethodType(_FORWARDS[kind], module)
            if kind == "mixer":
                module._fastmamba_config = config
        yield model
    finally:
        for module, forward in saved:
            if forward is None:
                module.__dict__.pop("forward", None)
            else:
                module.forward = forward
            module.__dict__.pop("_fastmamba_config", None)


# --- the two programs -------------------------------------------------------------------------------------------


class _Program(nn.Module):
    """Shared body of both programs; holds the model's backbone (and untied head) under their own names."""

    def __init__(self, model: nn.Module, config: Mamba2Config):
        super().__init__()
        self.config = config
        self.backbone = model.backbone
        if not config.tie_embeddings:
            head = getattr(model, "lm_head", None)
            if not isinstance(head, nn.Linear) or head.bias is not None:
                raise ModelError("untied model has no bias-free lm_head Linear")
            self.lm_head = head

    def _head_weight(self) -> torch.Tensor:
        return self.backbone.embeddings.weight if self.config.tie_embeddings else self.lm_head.weight

    def _run(self, tokens: torch.Tensor, states: list[torch.Tensor] | None, keep: int | None):
        u = F.embedding(tokens, self.backbone.embeddings.weight)
        new_states: list[torch.Tensor] = []
        for i, layer in enumerate(self.backbone.layers):
            conv, ssm = (states[2 * i], states[2 * i + 1]) if states is not None else (None, None)
            out, conv, ssm = layer.mixer(layer.norm(u), conv, ssm)
            u = u + out
            new_states += [conv, ssm]
        if keep is not None:
            u = u[u.shape[0] - keep:]
        logits = ops.lm_head(self.backbone.norm_f(u), self._head_weight())
        return (logits, *new_states)


class PrefillProgram(_Program):
    """prefill(tokens [L]) -> (logits, conv_0, ssm_0, ...) from a fresh sequence."""

    def __init__(self, model: nn.Module, config: Mamba2Config, all_logits: bool = False):
        super().__init__(model, config)
        self.all_logits = all_logits

    def forward(self, tokens: torch.Tensor):
        return self._run(tokens, None, None if self.all_logits else 1)


class DecodeProgram(_Program):
    """decode(token [1], conv_0, ssm_0, ...) -> (logits [1, vocab], conv_0', ssm_0', ...)."""

    def forward(self, token: torch.Tensor, *states: torch.Tensor):
        return self._run(token, list(states), None)
