"""lower-to-accel: quantized `mamba`/`mamba_quant` functions -> `accel.program`s with symbolic memory.

Place in the flow: after fuse-elementwise, before plan-memory.  Each
`func.func` that takes token ids (a prefill program, or the one-token decode
step compiled as a prefill of length 1) becomes an `accel.program` of the same
name, plus `func.func @<name>_constants` with the offline weight expressions
its constant blocks are packed from.  The mapping onto the units (tiling,
DMA, recurrent states in DDR) is compiler/backend/lowering.py.
The target is the module's (set-target).  Options: `tile_kib` (the on-chip budget of one streamed weight tile
or state chunk; 0 = automatic: 1/16 of the target's buffer, halved while the
rings and the activations live at once would not fit; when that is not
enough, as on `small`'s 64 KiB, the compact mapping of lowering.py's `_fit`:
tiles of fewer channels, a head's SSM state in parts of its head dimension,
conv operands loaded one chunk ahead); `prefetch` (weight
tiles loaded ahead; with automatic tiles every function takes the smallest
budget any of them needs, so a prefill and its decode step share their
constant blocks); `fuse_front` (default true: each layer's in_proj, conv
and scan lowered together so the scan starts after a few in_proj tiles;
false: op by op, the scan after the whole conv); `head_prefetch` (default
true: in a prefill, as many of the head's first weight tiles as fit beside
the last layer's buffers are loaded while that layer runs, so less of the
head's DDR stream follows it; false: the whole head streams after the last
layer; decode steps are the same either way).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from fastmamba.compiler.backend.lowering import DEFAULT_PREFETCH, LoweringOptions, lower_functions
from fastmamba.compiler.dialects.accel import module_target
from fastmamba.isa.errors import InputError

DEFAULT_TILE_FRACTION = 16  # tile_kib = 0: a streamed block may take 1/16 of the on-chip buffer


@dataclass(frozen=True)
class LowerToAccelPass(ModulePass):
    name = "lower-to-accel"

    tile_kib: int = 0
    prefetch: int = DEFAULT_PREFETCH
    fuse_front: bool = True
    head_prefetch: bool = True

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        target = module_target(op, self.name)
        if self.prefetch < 1 or self.tile_kib < 0:
            raise InputError("lower-to-accel: prefetch must be >= 1 and tile_kib >= 0")
        tile = self.tile_kib * 1024 or target.buffer_bytes // DEFAULT_TILE_FRACTION
        options = LoweringOptions(tile_bytes=tile, prefetch=self.prefetch, fuse_front=self.fuse_front,
                                  head_prefetch=self.head_prefetch)
        fns = [f for f in op.body.block.ops if isinstance(f,
                                                          func.FuncOp) and not f.sym_name.data.endswith("_constants")]
        if not fns:
            raise InputError("lower-to-accel: the module has no function to lower")
        for fn, (program, constants) in zip(fns, lower_functions(fns, target, options, auto_tile=self.tile_kib == 0)):
            op.body.block.insert_op_before(program, fn)
            op.body.block.insert_op_before(constants, fn)
            fn.detach()
            fn.erase(safe_erase=False)
