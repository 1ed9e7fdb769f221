"""The timing of every operation, written once: what the scheduler plans with and the simulator charges.

Place in the flow: `isa/`, just below the instruction table: each `OpSpec` of
`isa.instructions.OPS` names its occupancy formula (one of the functions
here) and the target parameter holding its latency, its cost column; this
module's `occupancy` and `latency` read that column.  The compiler's VLIW
scheduler (passes/schedule_vliw.py, compiler/backend/) plans with these
numbers; the simulator's unit footprints (simulator/units/*.py) charge the
same (tests/test_isa_costs.py checks that they agree).  Every rate and
latency comes from the target config (`isa.target.Target`).

- `occupancy(instr, target)`: cycles the operation holds its unit.  Compute
  units (LIN, CONV, SSM, VEC): work / the unit's rate.  DMA (LD, ST): cycles
  the transfer holds the one DDR channel, `transfer_cycles(instr)`.
  CTL: 0 (it occupies nothing).
- `latency(instr, target)`: further cycles after the occupancy until results
  are complete: the unit's pipeline latency; `dma_latency` for DMA.
- `ddr_bytes(instr)`: bytes the operation moves over the DDR channel.
- `dma_cycles(nbytes, target)`: ceil(nbytes / dma_bytes_per_cycle).
- LIN: ceil(m*k*n / lin_macs_per_cycle), or with the target's `lin_row_tiles`
  m * ceil(n / (lin_groups * lin_mac_trees)) * ceil(k / lin_mac_tree_width)
  (the RTL's LIN unit: one row's W positions to every tree per cycle).
- SSM: t * max(ceil(h*p*n / ssm_elems_per_cycle), ceil(h / nla_lanes)), or with the target's
  `ssm_head_tiles` t * h * ceil(p / ssm_headdim_lanes) * ceil(n / ssm_dstate_lanes) (the RTL's SSM unit).
- VEC: beats of vec_lanes elements (see `vec_cycles`), each holding the unit
  ceil(k / vec_stages) cycles for a chain of k micro-ops (at least 1).
- `transfer_cycles(instr, target)`: cycles a DMA operation holds the channel:
  `dma_cycles(ddr_bytes(instr))`, or with the target's `dma_row_bursts` (each
  row its own burst, as the RTL's DMA engines move them)
  rows * ceil(row_bytes / dma_bytes_per_cycle).

The DDR channel serves transfers in issue order (docs/ACCELERATOR.md): a DMA
operation issued at t starts at max(t, channel free), holds the channel
`occupancy` cycles and completes `latency` cycles later.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the instruction table imports this module for its cost column
    from fastmamba.isa.instructions import Instruction

DMA_SLOTS = ("LD", "ST")
COMPUTE_SLOTS = ("LIN", "CONV", "SSM", "VEC")
VEC_PASSES_WITH_RMSNORM = 2  # a chain with an rmsnorm reads its rows twice: sum of squares, then scaling
VEC_MICRO_OP_FIELDS = ("op0", "op1", "op2", "op3")


def ddr_bytes(instr: Instruction) -> int:
    """Bytes moved over the DDR channel: rows * row_bytes for ld, ldg and st; 0 otherwise."""
    if instr.slot in DMA_SLOTS:
        return int(instr["rows"]) * int(instr["row_bytes"])
    return 0


def dma_cycles(nbytes: int, target) -> int:
    """Cycles a transfer of `nbytes` holds the DDR channel."""
    return math.ceil(nbytes / float(target.dma_bytes_per_cycle))


def transfer_cycles(instr: Instruction, target) -> int:
    """Cycles a DMA operation holds the DDR channel (see the module docstring)."""
    if getattr(target, "dma_row_bursts", 0):
        return int(instr["rows"]) * dma_cycles(int(instr["row_bytes"]), target)
    return dma_cycles(ddr_bytes(instr), target)


def lin_cycles(i: Instruction, target) -> int:
    """LIN: ceil(m*k*n / lin_macs_per_cycle), the MACs at the unit's rate; with the target's lin_row_tiles
    m * ceil(n / (lin_groups*lin_mac_trees)) * ceil(k / lin_mac_tree_width) (the RTL's LIN unit)."""
    m, k, n = int(i["m"]), int(i["k"]), int(i["n"])
    if getattr(target, "lin_row_tiles", 0):
        return m * -(-n // (target.lin_groups * target.lin_mac_trees)) * -(-k // target.lin_mac_tree_width)
    return math.ceil(m * k * n / target.lin_macs_per_cycle)


def conv_cycles(i: Instruction, target) -> int:
    """CONV: ceil(t*c / conv_channels), all kw taps of a channel per cycle."""
    t, c = int(i["t"]), int(i["c"])
    if getattr(target, "conv_row_tiles", 0):  # the RTL's CONV unit: one token's block of channels per cycle
        return t * -(-c // target.conv_channels)
    return math.ceil(t * c / target.conv_channels)


def ssm_cycles(i: Instruction, target) -> int:
    """SSM: per token the larger of the state elements at ssm_elems_per_cycle and the heads at nla_lanes; with the
    target's ssm_head_tiles h * ceil(p / ssm_headdim_lanes) * ceil(n / ssm_dstate_lanes) (the RTL's SSM unit:
    one head's block of lanes per cycle, its NLA one head per cycle)."""
    t, h, p, n = (int(i[f]) for f in ("t", "h", "p", "n"))
    if getattr(target, "ssm_head_tiles", 0):
        return t * h * -(-p // target.ssm_headdim_lanes) * -(-n // target.ssm_dstate_lanes)
    per_token = max(math.ceil(h * p * n / target.ssm_elems_per_cycle), math.ceil(h / target.nla_lanes))
    return t * per_token


def vec_beat_cycles(i: Instruction, target) -> int:
    """Cycles a `vec` beat holds the unit: the passes through the target's vec_stages micro-op stages,
    ceil(k / vec_stages) for a chain of k micro-ops (its fields other than none), at least 1."""
    k = sum(i.enum(f) != "none" for f in VEC_MICRO_OP_FIELDS)
    return max(1, -(-k // getattr(target, "vec_stages", len(VEC_MICRO_OP_FIELDS))))


def vec_cycles(i: Instruction, target) -> int:
    """VEC chain: ceil(rows*cols / vec_lanes) beats, twice with an rmsnorm (a second pass after the sum of squares);
    with the target's vec_row_tiles rows * ceil(cols / vec_lanes), with an rmsnorm
    rows * (cols / group) * 2 * ceil(group / vec_lanes) (the RTL's VEC unit: a row's lanes per beat, each
    group's two passes in turn); each beat `vec_beat_cycles` cycles."""
    rms = "rmsnorm" in (i.enum(f) for f in VEC_MICRO_OP_FIELDS)
    passes = VEC_PASSES_WITH_RMSNORM if rms else 1
    rows, cols, lanes = int(i["rows"]), int(i["cols"]), target.vec_lanes
    if getattr(target, "vec_row_tiles", 0):
        group = int(i["group"]) if rms else cols
        if group < 1 or cols % group:  # (an invalid chain: the simulator refuses it)
            group = cols
        beats = rows * (cols // group) * passes * -(-group // lanes)
    else:
        beats = passes * math.ceil(rows * cols / lanes)
    return beats * vec_beat_cycles(i, target)


def argmax_cycles(i: Instruction, target) -> int:
    """vec.argmax: ceil(rows*cols / vec_lanes); with the target's vec_row_tiles rows * ceil(cols / vec_lanes)."""
    rows, cols = int(i["rows"]), int(i["cols"])
    if getattr(target, "vec_row_tiles", 0):
        return rows * -(-cols // target.vec_lanes)
    return math.ceil(rows * cols / target.vec_lanes)


def no_cycles(i: Instruction, target) -> int:
    """CTL: occupies nothing."""
    return 0


def occupancy(instr: Instruction, target) -> int:
    """Cycles `instr` holds its unit (compute) or the DDR channel (DMA); 0 for CTL."""
    formula = instr.spec.occupancy
    assert formula is not None, f"{instr.spec.name} has no occupancy in the ISA table"
    return formula(instr, target)


def latency(instr: Instruction, target) -> int:
    """Cycles after the occupancy until `instr`'s results are complete."""
    param = instr.spec.latency_param
    return 0 if param is None else int(getattr(target, param))


def duration(instr: Instruction, target) -> int:
    """occupancy + latency: from the start of the operation to its results."""
    return occupancy(instr, target) + latency(instr, target)
