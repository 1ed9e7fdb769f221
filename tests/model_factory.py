"""Test helper: small random Mamba2 models, as transformers objects and on disk.

Place in the flow: test support only.  Builds transformers'
`Mamba2ForCausalLM` with every parameter random and non-trivial (A_log,
dt_bias, D, every norm weight, the conv bias), so agreement tests exercise
each term, and writes models to directories in both checkpoint layouts.
"""

from __future__ import annotations

from pathlib import Path

import torch

from fastmamba.compiler.checkpoint import save_mamba_ssm_layout
from fastmamba.compiler.config import Mamba2Config

# A few small shapes that differ in every dimension the reference handles.
TINY = dict(d_model=32, n_layer=2, vocab_size=256, d_state=8, headdim=16, expand=2, ngroups=1, d_conv=4, chunk_size=8)
CONFIGS = {
    "tiny": TINY,
    "groups2": dict(TINY, ngroups=2, d_state=16, headdim=8, chunk_size=16),
    "expand3_k3": dict(TINY, d_model=24, expand=3, headdim=12, d_conv=3, d_state=4, n_layer=3, vocab_size=100,
                       tie_embeddings=False),
    "groups4_k2": dict(TINY, d_model=16, ngroups=4, headdim=4, d_state=6, d_conv=2, vocab_size=300, chunk_size=5),
}


def make_config(name: str = "tiny", **overrides) -> Mamba2Config:
    return Mamba2Config(**{**CONFIGS[name], **overrides})


def random_hf_model(config: Mamba2Config, seed: int = 0, dtype: torch.dtype = torch.float32):
    """A transformers Mamba2ForCausalLM of `config` with every parameter random (eval mode)."""
    import transformers

    torch.manual_seed(seed)
    model = transformers.Mamba2ForCausalLM(transformers.Mamba2Config(**config.to_transformers_dict()))
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape, lo=-1.0, hi=1.0):
        return torch.rand(*shape, generator=gen) * (hi - lo) + lo

    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("A_log"):
                p.copy_(rand(*p.shape, lo=-1.0, hi=1.5))  # A in [-4.5, -0.37]
            elif name.endswith("dt_bias"):
                p.copy_(rand(*p.shape, lo=-4.0, hi=0.5))  # dt from ~0.02 to ~1
            elif name.endswith(".D"):
                p.copy_(rand(*p.shape, lo=-1.0, hi=2.0))
            elif name.endswith("norm.weight") or name.endswith("norm_f.weight"):
                p.copy_(rand(*p.shape, lo=0.5, hi=1.5))
            elif name.endswith("conv1d.bias"):
                p.copy_(rand(*p.shape, lo=-0.3, hi=0.3))
            elif name.endswith("conv1d.weight"):
                p.copy_(rand(*p.shape, lo=-0.6, hi=0.6))
            elif p.dim() == 2:  # embeddings, projections, untied head
                p.copy_(torch.randn(*p.shape,
                                    generator=gen) / p.shape[1] ** 0.5 * (2.0 if "embeddings" in name else 1.0))
    return model.to(dtype).eval()


def random_tokens(config: Mamba2Config, batch: int, length: int, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, config.vocab_size, (batch, length), generator=gen)


def save_hf_dir(model, directory: Path) -> Path:
    """The model written by transformers' own save_pretrained."""
    model.save_pretrained(directory)
    return directory


def save_mamba_ssm_dir(model, config: Mamba2Config, directory: Path, fmt: str = "safetensors") -> Path:
    """The model written in mamba_ssm's layout (names `backbone.embedding.weight`, config d_model/ssm_cfg)."""
    return save_mamba_ssm_layout(config, model.state_dict(), directory, fmt=fmt)
