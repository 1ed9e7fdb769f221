"""The frontend's entry point: a Mamba2 model in, a verified `mamba` module (and its weight store) out.

Place in the flow: compiler.frontend.{canonical, export, raise_torch} in a row;
the `import` command and the passes' tests call `import_model`.

Sources: a model directory (transformers or mamba_ssm layout; exported from a
`Mamba2Skeleton` on the meta device, so no weight is read), a live
transformers `Mamba2ForCausalLM` (exported through its own modules, rebound),
or a bare `Mamba2Config` (shapes only, no weights: for benchmarks).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from xdsl.dialects.builtin import ModuleOp

from fastmamba.compiler.config import DEFAULT_SEQ_LEN, Mamba2Config
from fastmamba.compiler.frontend.canonical import PROGRAMS, check_model_tree
from fastmamba.compiler.frontend.export import export_program, torch_mlir_text
from fastmamba.compiler.frontend.raise_torch import parse_torch_module, raise_to_mamba
from fastmamba.compiler.frontend.skeleton import Mamba2Skeleton
from fastmamba.isa.errors import InputError

__all__ = ["Imported", "import_model", "DEFAULT_SEQ_LEN"]



@dataclass(frozen=True)
class Imported:
    config: Mamba2Config
    weights: Any  # compiler.checkpoint.WeightStore, or None for a bare config
    module: ModuleOp
    program: str


def _tree_and_weights(source: Any):
    if isinstance(source, Mamba2Config):
        return source, None, Mamba2Skeleton(source)
    from fastmamba.compiler.checkpoint import load_model

    if isinstance(source, (str, os.PathLike)):
        config, weights = load_model(source)
        return config, weights, Mamba2Skeleton(config)
    if hasattr(source, "config") and hasattr(source.config, "to_dict"):  # a live model: its modules first
        check_model_tree(source, Mamba2Config.from_transformers_dict(source.config.to_dict()))
    config, weights = load_model(source)
    return config, weights, source


def import_model(source: Any, program: str = "prefill", seq_len: int = DEFAULT_SEQ_LEN,
                 all_logits: bool = False) -> Imported:
    """Export `program` of `source`, import it through torch-mlir and raise it to `mamba`."""
    if program not in PROGRAMS:
        raise InputError(f"unknown program {program!r} (choose from {', '.join(PROGRAMS)})")
    if not isinstance(seq_len, int) or isinstance(seq_len, bool) or seq_len < 1:
        raise InputError(f"sequence length must be a positive integer, got {seq_len!r}")
    config, weights, tree = _tree_and_weights(source)
    exported = export_program(tree, config, program, seq_len, all_logits)
    module = raise_to_mamba(parse_torch_module(torch_mlir_text(exported, program)))
    return Imported(config, weights, module, program)
