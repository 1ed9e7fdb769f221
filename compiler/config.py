"""The Mamba2 model configuration every part of fastmamba reads.

Place in the flow: the bottom of the compiler.  `compiler.checkpoint` builds a
`Mamba2Config` from a checkpoint's config (transformers' `config.json` or
mamba_ssm's), the FP32 reference, the frontend and the passes read shapes from
it.  It is plain Python (no torch) and validated on construction: a value the
rest of fastmamba does not implement raises `ModelError` naming the key.

What is supported (everything else is rejected, not ignored):
- Mamba2 mixers only (no Mamba1 layers, no attention layers, no MLP blocks);
- RMSNorm before each mixer and at the end, gated RMSNorm y * SiLU(z) inside
  the mixer (mamba_ssm's `norm_before_gate=False`) with group size
  d_inner / ngroups;
- no bias in in_proj / out_proj; a conv bias or not; SiLU activation;
- scalar D per head, dt limit (0, inf) (no clamp), d_ssm = d_inner.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

from fastmamba.compiler.errors import ModelError

__all__ = ["Mamba2Config", "DEFAULT_MODEL_DIR", "DEFAULT_SEQ_LEN", "PROGRAMS"]

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "models" / "default"  # the bundled model (compiler/models/)
DEFAULT_SEQ_LEN = 64  # prefill tokens when the target's buffer holds them (compiler.compile.default_seq_len)
PROGRAMS = ("prefill", "decode")  # the programs a model is exported as (compiler.frontend.canonical)


def _is_inf(value: Any) -> bool:
    """True for +inf in any of the spellings config files use."""
    if isinstance(value, Mapping) and set(value) == {"__float__"}:  # transformers 5 writes {"__float__": "Infinity"}
        value = value["__float__"]
    if isinstance(value, str):
        return value.strip().lower() in ("inf", "+inf", "infinity", "+infinity")
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isinf(value) and value > 0


def _is_default_dt_limit(value: Any) -> bool:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return False
    low, high = value
    return isinstance(low, (int, float)) and not isinstance(low, bool) and low == 0 and _is_inf(high)


def _require(cond: bool, key: str, value: Any, why: str) -> None:
    if not cond:
        raise ModelError(f"unsupported config value {key}={value!r}: {why}")


def _get_int(d: Mapping[str, Any], key: str, default: Any = None, prefix: str = "") -> int:
    if key not in d and default is None:
        raise ModelError(f"config is missing required key {prefix}{key}")
    value = d.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ModelError(f"config value {prefix}{key}={value!r} is not an integer")
    return value


@dataclass(frozen=True)
class Mamba2Config:
    """Shape and options of a Mamba2 language model (mamba_ssm's names).

    `nheads` may be given (transformers configs carry it); it must then equal
    d_inner / headdim.  `chunk_size` is informational: the sequential
    reference and the accelerator do not chunk.
    """

    d_model: int
    n_layer: int
    vocab_size: int
    d_state: int = 128
    headdim: int = 64
    expand: int = 2
    ngroups: int = 1
    d_conv: int = 4
    nheads: int | None = None
    norm_eps: float = 1e-5  # RMSNorm before each mixer and the final norm_f
    gated_norm_eps: float = 1e-5  # the mixer's gated RMSNorm
    tie_embeddings: bool = True
    use_conv_bias: bool = True
    chunk_size: int = 256

    def __post_init__(self) -> None:
        for key in ("d_model", "n_layer", "vocab_size", "d_state", "headdim", "expand", "ngroups", "d_conv",
                    "chunk_size"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ModelError(f"config value {key}={value!r} must be a positive integer")
        for key in ("norm_eps", "gated_norm_eps"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < 1):
                raise ModelError(f"config value {key}={value!r} must be a number in (0, 1)")
        d_inner = self.expand * self.d_model
        _require(d_inner % self.headdim == 0, "headdim", self.headdim, f"d_inner={d_inner} is not a multiple of it")
        derived = d_inner // self.headdim
        if self.nheads is None:
            object.__setattr__(self, "nheads", derived)
        elif self.nheads != derived:
            _require(False, "nheads", self.nheads,
                     f"must equal d_inner / headdim = {d_inner} / {self.headdim} = {derived}")
        _require(self.nheads % self.ngroups == 0, "ngroups", self.ngroups,
                 f"nheads={self.nheads} is not a multiple of it")
        for key in ("tie_embeddings", "use_conv_bias"):
            if not isinstance(getattr(self, key), bool):
                raise ModelError(f"config value {key}={getattr(self, key)!r} must be true or false")

    # --- derived shapes -------------------------------------------------
    @property
    def d_inner(self) -> int:
        return self.expand * self.d_model

    @property
    def conv_dim(self) -> int:
        """Channels of the causal conv: x, B and C together."""
        return self.d_inner + 2 * self.ngroups * self.d_state

    @property
    def in_proj_out(self) -> int:
        """Rows of in_proj: z (d_inner), xBC (conv_dim), dt (nheads)."""
        return self.d_inner + self.conv_dim + self.nheads

    @property
    def heads_per_group(self) -> int:
        return self.nheads // self.ngroups

    @property
    def norm_group_size(self) -> int:
        """Channels per group of the gated RMSNorm."""
        return self.d_inner // self.ngroups

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    # --- converters -----------------------------------------------------
    @classmethod
    def from_transformers_dict(cls, d: Mapping[str, Any]) -> "Mamba2Config":
        """From transformers' `Mamba2Config.to_dict()` / its `config.json`."""
        model_type = d.get("model_type", "mamba2")
        _require(model_type == "mamba2", "model_type", model_type, "only mamba2 is supported")
        act = d.get("hidden_act", "silu")
        _require(act == "silu", "hidden_act", act, "only silu is supported")
        _require(d.get("use_bias", False) is False, "use_bias", d.get("use_bias"),
                 "in_proj/out_proj biases are not supported")
        limit = d.get("time_step_limit", (0.0, math.inf))
        _require(_is_default_dt_limit(limit), "time_step_limit", limit, "only (0, inf), i.e. no dt clamp, is supported")
        eps = d.get("layer_norm_epsilon", 1e-5)
        # transformers uses layer_norm_epsilon for the gated norm too (mamba_ssm fixes it at 1e-5).
        return cls(
            d_model=_get_int(d, "hidden_size"),
            n_layer=_get_int(d, "num_hidden_layers"),
            vocab_size=_get_int(d, "vocab_size"),
            d_state=_get_int(d, "state_size", 128),
            headdim=_get_int(d, "head_dim", 64),
            expand=_get_int(d, "expand", 2),
            ngroups=_get_int(d, "n_groups", 8),
            d_conv=_get_int(d, "conv_kernel", 4),
            nheads=_get_int(d, "num_heads") if "num_heads" in d else None,
            norm_eps=eps,
            gated_norm_eps=eps,
            tie_embeddings=d.get("tie_word_embeddings", False),
            use_conv_bias=d.get("use_conv_bias", True),
            chunk_size=_get_int(d, "chunk_size", 256),
        )

    def to_transformers_dict(self) -> dict[str, Any]:
        """Keyword arguments for transformers' `Mamba2Config`."""
        if self.norm_eps != self.gated_norm_eps:
            raise ModelError("transformers' Mamba2 has one layer_norm_epsilon; norm_eps and gated_norm_eps differ")
        return dict(
            model_type="mamba2", hidden_size=self.d_model, num_hidden_layers=self.n_layer, vocab_size=self.vocab_size,
            state_size=self.d_state, head_dim=self.headdim, expand=self.expand, n_groups=self.ngroups,
            conv_kernel=self.d_conv, num_heads=self.nheads, layer_norm_epsilon=self.norm_eps,
            tie_word_embeddings=self.tie_embeddings, use_conv_bias=self.use_conv_bias, use_bias=False,
            hidden_act="silu", chunk_size=self.chunk_size,
        )

    # mamba_ssm Mamba2 keyword arguments we know: those checked below, and those that only shape initialisation
    # or kernels.
    _SSM_CFG_KNOWN = frozenset({"layer", "A_init_range", "dt_min", "dt_max", "dt_init_floor", "conv_init",
                                  "use_mem_eff_path", "layer_idx", "process_group", "sequence_parallel",
                                  "activation", "device", "dtype", "chunk_size", "d_state", "d_conv", "expand",
                                  "headdim", "ngroups", "d_ssm", "D_has_hdim", "rmsnorm", "norm_before_gate",
                                  "dt_limit", "bias", "conv_bias"})

    @classmethod
    def from_mamba_ssm_dict(cls, d: Mapping[str, Any]) -> "Mamba2Config":
        """From mamba_ssm's `MambaConfig` (config.json of `MambaLMHeadModel`)."""
        ssm = d.get("ssm_cfg") or {}
        if not isinstance(ssm, Mapping):
            raise ModelError(f"config value ssm_cfg={ssm!r} is not an object")
        layer = ssm.get("layer", "Mamba1")  # mamba_ssm's default layer is Mamba1
        _require(layer == "Mamba2", "ssm_cfg.layer", layer, "only Mamba2 layers are supported")
        unknown = sorted(set(ssm) - cls._SSM_CFG_KNOWN)
        if unknown:
            raise ModelError(f"unsupported config key ssm_cfg.{unknown[0]}")
        _require(not d.get("d_intermediate", 0), "d_intermediate", d.get("d_intermediate"),
                 "MLP blocks are not supported")
        _require(not d.get("attn_layer_idx"), "attn_layer_idx", d.get("attn_layer_idx"),
                 "attention layers are not supported")
        _require(d.get("rms_norm", True) is True, "rms_norm", d.get("rms_norm"), "only RMSNorm is supported")
        _require(ssm.get("rmsnorm", True) is True, "ssm_cfg.rmsnorm", ssm.get("rmsnorm"),
                 "the gated RMSNorm is required")
        _require(ssm.get("norm_before_gate", False) is False, "ssm_cfg.norm_before_gate", ssm.get("norm_before_gate"),
                 "only gating before the norm is supported")
        _require(ssm.get("D_has_hdim", False) is False, "ssm_cfg.D_has_hdim", ssm.get("D_has_hdim"),
                 "only one D per head is supported")
        _require(ssm.get("bias", False) is False, "ssm_cfg.bias", ssm.get("bias"),
                 "in_proj/out_proj biases are not supported")
        limit = ssm.get("dt_limit", (0.0, math.inf))
        _require(_is_default_dt_limit(limit), "ssm_cfg.dt_limit", limit,
                 "only (0, inf), i.e. no dt clamp, is supported")
        act = ssm.get("activation", "silu")
        _require(act in ("silu", "swish"), "ssm_cfg.activation", act, "only silu is supported")
        d_model = _get_int(d, "d_model")
        expand = _get_int(ssm, "expand", 2, "ssm_cfg.")
        d_ssm = ssm.get("d_ssm")
        _require(d_ssm is None or d_ssm == expand * d_model, "ssm_cfg.d_ssm", d_ssm,
                 "only d_ssm = d_inner is supported")
        vocab = _get_int(d, "vocab_size")
        pad = _get_int(d, "pad_vocab_size_multiple", 8)
        vocab += (-vocab) % pad  # MambaLMHeadModel pads the vocabulary
        return cls(
            d_model=d_model,
            n_layer=_get_int(d, "n_layer"),
            vocab_size=vocab,
            d_state=_get_int(ssm, "d_state", 128, "ssm_cfg."),
            headdim=_get_int(ssm, "headdim", 64, "ssm_cfg."),
            expand=expand,
            ngroups=_get_int(ssm, "ngroups", 1, "ssm_cfg."),
            d_conv=_get_int(ssm, "d_conv", 4, "ssm_cfg."),
            norm_eps=1e-5,  # MixerModel's norm_epsilon; MambaLMHeadModel does not take it from the config
            gated_norm_eps=1e-5,  # Mamba2 builds RMSNormGated(eps=1e-5)
            tie_embeddings=d.get("tie_embeddings", True),
            use_conv_bias=ssm.get("conv_bias", True),
            chunk_size=_get_int(ssm, "chunk_size", 256, "ssm_cfg."),
        )

    def to_mamba_ssm_dict(self) -> dict[str, Any]:
        """mamba_ssm's `MambaConfig` as a dict (vocab already padded: multiple 1)."""
        if self.norm_eps != 1e-5 or self.gated_norm_eps != 1e-5:
            raise ModelError("mamba_ssm's Mamba2 fixes both norm epsilons at 1e-5")
        return dict(
            d_model=self.d_model, d_intermediate=0, n_layer=self.n_layer, vocab_size=self.vocab_size,
            ssm_cfg=dict(layer="Mamba2", d_state=self.d_state, d_conv=self.d_conv, expand=self.expand,
                         headdim=self.headdim, ngroups=self.ngroups, chunk_size=self.chunk_size,
                         conv_bias=self.use_conv_bias),
            attn_layer_idx=[], attn_cfg={}, rms_norm=True, residual_in_fp32=True, fused_add_norm=True,
            pad_vocab_size_multiple=1, tie_embeddings=self.tie_embeddings,
        )
