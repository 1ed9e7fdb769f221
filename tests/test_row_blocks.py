"""lower-to-accel's row blocks: a norm feeding a linear, and that linear's first tiles, run block by block.

A small random one-layer model's prefill of 48 tokens (12 row blocks of 4), lowered with
1 KiB weight tiles: each linear after a norm multiplies, per row block, as many
of its first tiles as it takes to cover the VEC time of one norm block (at most
the tiles loaded ahead, and no two into the same scratch slot), counted here
from the emitted instructions' costs; the simulated program equals the
`mamba_quant` interpreter bit for bit.
"""

from __future__ import annotations

import re

from fastmamba.compiler.backend.lowering import DEFAULT_PREFETCH
from fastmamba.compiler.dialects.accel import AccelInstructionOp, ProgramOp, instruction_of
from fastmamba.compiler.interpreters.mamba_quant import run_function
from fastmamba.compiler.pipeline import parse_ir, print_ir, run_pipeline
from fastmamba.isa import costs
from fastmamba.isa.instructions import Instruction
from test_lower_to_accel import VC709, assert_equals_interpreter, drop_head, quantized, simulate

LENGTH, BLOCK = 48, 4  # 12 row blocks of 4 rows
LOWER = "lower-to-accel{tile_kib=1}"


def _expected_blocked(ops: list[tuple[Instruction, str, tuple]], site: str) -> int:
    """The tiles of `site` that should run by row blocks: the first ones (at most the prefetch, no two writing the
    same place) until their LIN time over one block covers the VEC time of the norm's first block."""
    first_lin = next(n for n, (i, text, _) in enumerate(ops) if i.op == "lin" and f" {site} tile " in text)
    norm = next(i for i, text, _ in reversed(ops[:first_lin]) if i.op == "vec" and text.endswith(f"rows 0:{BLOCK}"))
    tiles: dict[int, tuple[Instruction, tuple]] = {}
    for i, text, dst in ops:
        m = re.search(rf" {re.escape(site)} tile (\d+)( rows|$)", text)
        if i.op == "lin" and m:
            tiles.setdefault(int(m.group(1)), (i, dst))
    count, work, places = 0, 0, set()
    for j in sorted(tiles)[:DEFAULT_PREFETCH]:
        i, dst = tiles[j]
        if (count and work >= costs.occupancy(norm, VC709)) or dst in places:
            break
        work += costs.lin_cycles(Instruction("lin", {**dict(i.args), "m": BLOCK}), VC709)
        places.add(dst)
        count += 1
    return count


def test_first_tiles_run_by_row_blocks_and_stay_bit_exact():
    config, weights, module, ids = quantized("tiny", LENGTH, n_layer=1, windows=1)  # (the ranges do not matter)
    drop_head(module)
    ref = run_function(module, weights, "prefill", ids)
    lowered = parse_ir(print_ir(module))
    run_pipeline(lowered, LOWER)
    program = next(p for p in lowered.walk() if isinstance(p, ProgramOp))
    ops = []
    for op in program.body.block.ops:
        if isinstance(op, AccelInstructionOp):
            instr = instruction_of(op)
            dst = (op.mem["dst"].block.data, int(instr["dst"])) if "dst" in op.mem else None
            ops.append((instr, op.debug_text or "", dst))
    sites = sorted({m.group(1) for _, text, _ in ops if (m := re.search(r" (\S+) tile 0 rows 0:", text))})
    assert len(sites) == 2 * config.n_layer  # every in_proj and out_proj follows a norm
    counts = {}
    for site in sites:
        blocked = {int(m.group(1)) for _, text, _ in ops if (m := re.search(rf" {re.escape(site)} tile (\d+) rows ",
                                                                             text))}
        counts[site] = len(blocked)
        assert blocked == set(range(_expected_blocked(ops, site))), site
        rows = [text for _, text, _ in ops if f" {site} tile 0 rows " in text]
        assert len(rows) == LENGTH // BLOCK
    assert max(counts.values()) > 1  # some linear needs more than its first tile to cover a norm block
    run_pipeline(module, f"{LOWER},plan-memory,schedule-vliw")
    prog, result = simulate(module, weights, ids)
    assert_equals_interpreter(prog, result, ref, config.n_layer)
