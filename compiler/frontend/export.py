"""torch.export of the canonical programs and their import through torch-mlir's FX importer.

Place in the flow: after compiler.frontend.canonical, before raising.
`export_program` traces a prefill or decode program (on the meta device when
the model's parameters are there, so no weight is read); `torch_mlir_text`
imports the ExportedProgram into torch-mlir's torch dialect and prints it in
the generic form with local scope, the text xDSL parses.

Weights stay out of the IR: the importer's `resolve_input` hook turns every
parameter into `torch.operator "fastmamba.weight"` carrying the parameter's
name (`{fastmamba.weight = "backbone.layers.0.mixer.in_proj.weight"}`), never
a literal.  No decomposition table is applied, so aten.linear and aten.silu
arrive whole and the raising maps them one to one.  Each node's location is
rewritten to name the module it came from (non-strict export records only the
outermost frame, the same line for every node).
"""

from __future__ import annotations

import torch
from torch import nn

from fastmamba.compiler.config import Mamba2Config
from fastmamba.compiler.frontend.canonical import DecodeProgram, PrefillProgram, canonical_form
from fastmamba.isa.errors import InputError
from fastmamba.compiler.errors import ModelError

__all__ = ["WEIGHT_OP", "WEIGHT_ATTR", "export_program", "torch_mlir_text", "example_inputs"]

WEIGHT_OP = "fastmamba.weight"  # torch.operator name standing for a named parameter
WEIGHT_ATTR = "fastmamba.weight"  # its attribute holding the parameter name


def _device(model: nn.Module) -> torch.device:
    devices = {p.device for p in model.parameters()}
    dtypes = {p.dtype for p in model.parameters()}
    if dtypes != {torch.float32}:
        raise ModelError(f"model parameters must be float32, got {sorted(str(d) for d in dtypes)}; convert with "
                         "model.float()")
    if len(devices) != 1:
        raise ModelError(f"model parameters lie on several devices: {sorted(str(d) for d in devices)}")
    return devices.pop()


def example_inputs(config: Mamba2Config, program: str, seq_len: int, device: torch.device | str = "cpu") -> tuple:
    """Inputs of the right shapes for `program` (zeros)."""
    if program == "prefill":
        if seq_len < 1:
            raise InputError(f"sequence length must be at least 1, got {seq_len}")
        return (torch.zeros(seq_len, dtype=torch.int64, device=device),)
    if program == "decode":
        states = []
        for _ in range(config.n_layer):
            states += [torch.zeros(config.conv_dim, config.d_conv - 1, device=device),
                       torch.zeros(config.nheads, config.headdim, config.d_state, device=device)]
        return (torch.zeros(1, dtype=torch.int64, device=device), *states)
    raise InputError(f"unknown program {program!r} (prefill or decode)")


def export_program(model: nn.Module, config: Mamba2Config, program: str, seq_len: int = 64,
                   all_logits: bool = False) -> torch.export.ExportedProgram:
    """torch.export of `program` ("prefill" or "decode") of `model` in the canonical form."""
    device = _device(model)
    args = example_inputs(config, program, seq_len, device)
    with canonical_form(model, config):
        wrapper = PrefillProgram(model, config, all_logits) if program == "prefill" else DecodeProgram(model, config)
        with torch.no_grad():
            exported = torch.export.export(wrapper, args, strict=False)
    _name_locations(exported)
    return exported


def _name_locations(exported: torch.export.ExportedProgram) -> None:
    """Give each node a stack trace torch-mlir turns into loc("<module path>":<line>:0)."""
    for node in exported.graph.nodes:
        stack = node.meta.get("nn_module_stack")
        path = next(reversed(stack.values()))[0] if stack else "program"
        path = path.replace("L['self'].", "").replace("L['self']", "program")
        line = 0
        trace = node.meta.get("stack_trace") or ""
        if ", line " in trace:
            digits = trace.split(", line ", 1)[1].split(",", 1)[0]
            line = int(digits) if digits.isdigit() else 0
        node.meta["stack_trace"] = f'File "{path}/{node.name}", line {line}, in forward'


def torch_mlir_text(exported: torch.export.ExportedProgram, func_name: str) -> str:
    """The program in torch-mlir's torch dialect (raw import), generic form, weights by name."""
    from torch_mlir import ir
    from torch_mlir.dialects import torch as torch_d
    from torch_mlir.extras.fx_importer import FxImporter, FxImporterHooks

    class NamedWeights(FxImporterHooks):
        def resolve_input(self, gni, value, info):
            op = ir.Operation.create("torch.operator", results=[info.ir_type], attributes={
                "name": ir.StringAttr.get(WEIGHT_OP), WEIGHT_ATTR: ir.StringAttr.get(info.input_spec.target)})
            return op.result

        def resolve_literal(self, gni, literal, info):
            if isinstance(literal, torch.Tensor) and literal.numel() > 1:
                raise ModelError(f"the program captures a {list(literal.shape)} tensor constant; only parameters may "
                                 f"hold tensor data")
            return None

    context = ir.Context()
    torch_d.register_dialect(context)
    importer = FxImporter(context=context, hooks=NamedWeights())
    importer.import_program(exported, func_name=func_name)
    return importer.module.operation.get_asm(print_generic_op_form=True, use_local_scope=True,
                                             large_elements_limit=16, enable_debug_info=True)
