"""Memory planning: symbolic blocks of lowered programs -> DDR and on-chip buffer addresses.

Place in the flow: the algorithm behind passes/plan_memory.py, between the
lowering (compiler/backend/lowering.py, which names memory symbolically) and
schedule-vliw.

DDR layout (per module, so every program shares one constant image):
    [0, image)        the constant blocks of all programs, each once (by name), 64-byte aligned
    [image, ddr_size) per program: its tensors (inputs, outputs, states) in descriptor order
On-chip buffer: reusing the space of a dead buffer orders the ops of the two
buffers, so the program order decides which overlap the scheduler may find.
The lowering's order is not the order the units should run in (a layer's z
tiles of in_proj are written after its scan, but should run beside it), so
the program is first scheduled with every block in its own memory space (no
false dependence; `lookahead` bounds how far an op may move up, which bounds
the buffers live at once) and reordered to that schedule's issue order.  Then
every buffer's lifetime is [first, last] index in that order (last: the last
op issued before the buffer's last user completes, so that a long op's
operands are not reused under it) and
compiler/backend/buffer_alloc.py places them (first fit, reusing dead space;
a buffer that does not fit is an error naming it).  If the reordered program
does not fit, the lowering's order is allocated instead.
Each instruction's address fields are then offset + the base of the block its
`mem` property names (an #accel.mem<buf|const|tensor, "NAME">), and the property
is dropped.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr, IntegerAttr, ModuleOp, i64

from fastmamba.compiler.backend.buffer_alloc import DEFAULT_ALIGN, BufferAllocationError, BufferRequest, allocate
from fastmamba.compiler.backend.lowering import BUFFERS_ATTR, CONSTS_ATTR, buffer_lifetimes
from fastmamba.compiler.dialects.accel import (MEM_PROP, AccelInstructionOp, MemAttr, ProgramOp, buf_ref, const_ref,
                                               instruction_of, tensor_attr, tensor_ref)
from fastmamba.isa import costs
from fastmamba.isa.container import TensorDesc
from fastmamba.isa.errors import InputError
from fastmamba.isa.instructions import Instruction

__all__ = ["MemoryPlan", "plan_memory", "IMAGE_ATTR", "PEAK_ATTR"]

IMAGE_ATTR = "image_bytes"  # on each program after planning: the constant image's size
PEAK_ATTR = "buffer_peak"  # on each program after planning: the highest on-chip byte used


@dataclass(frozen=True)
class MemoryPlan:
    image_bytes: int
    const_ddr: dict[str, int]
    buffer_peak: dict[str, int]  # program -> bytes


def _align(value: int, align: int = DEFAULT_ALIGN) -> int:
    return -(-value // align) * align


def _consts(program: ProgramOp) -> list[DictionaryAttr]:
    attr = program.attributes.get(CONSTS_ATTR)
    return list(attr.data) if isinstance(attr, ArrayAttr) else []


DEFAULT_LOOKAHEAD = 24  # ops an op may move up when reordering by the symbolic schedule


def _symbolic_access(instr: Instruction, mem: dict[str, MemAttr]) -> tuple[tuple, tuple]:
    """(reads, writes) spans with each symbolic block its own space (offsets inside the block), named by its text
    (`buf:NAME`: quicker to hash and compare than the attribute)."""
    reads, writes = [], []
    for r in instr.regions():
        start, stop = r.span
        if stop <= start:
            continue
        ref = mem.get(r.field)
        space = r.space if ref is None else str(ref)
        if r.access in ("r", "rw"):
            reads.append((space, start, stop))
        if r.access in ("w", "rw"):
            writes.append((space, start, stop))
    return tuple(reads), tuple(writes)


def schedule_order(instrs: list[Instruction], mems: list[dict[str, MemAttr]], target,
                   lookahead: int) -> tuple[list[int], list[int]]:
    """The issue order of the ops scheduled on symbolic memory (a valid order: it keeps every dependence),
    and for each position of that order the last position issued before its op completes."""
    from fastmamba.compiler.backend.schedule import issue_order

    access = [_symbolic_access(i, m) for i, m in zip(instrs, mems)]
    order, starts = issue_order(instrs, target, lookahead, access=access)
    ends = [max(k, bisect_left(starts, starts[k] + costs.duration(instrs[n], target)) - 1)
            for k, n in enumerate(order)]
    return order, ends


def plan_memory(module: ModuleOp, target, lookahead: int = DEFAULT_LOOKAHEAD) -> MemoryPlan:
    programs = [p for p in module.walk() if isinstance(p, ProgramOp)]
    todo = [p for p in programs if BUFFERS_ATTR in p.attributes]
    # -- the constant image: every block once ------------------------------------------------------------------
    const_ddr: dict[str, int] = {}
    sizes: dict[str, int] = {}
    end = 0
    for p in programs:
        for c in _consts(p):
            name, nbytes = c.data["name"].data, c.data["bytes"].value.data
            if name in sizes:
                if sizes[name] != nbytes:
                    raise InputError(f"plan-memory: constant block {name} has {sizes[name]} bytes in one program and "
                                     f"{nbytes} in another")
                if "ddr" in c.data:
                    const_ddr[name] = c.data["ddr"].value.data
                continue
            sizes[name] = nbytes
            const_ddr[name] = c.data["ddr"].value.data if "ddr" in c.data else _align(end)
            end = max(end, const_ddr[name] + nbytes)
    image = _align(end)
    if image > target.ddr_bytes:
        raise InputError(f"plan-memory: the constant image ({image} bytes) exceeds the target's DDR "
                         f"({target.ddr_bytes} bytes)")
    peaks = {}
    for p in programs:
        consts = [DictionaryAttr({**c.data, "ddr": IntegerAttr(const_ddr[c.data["name"].data],
                                                               i64)}) for c in _consts(p)]
        if consts:
            p.attributes[CONSTS_ATTR] = ArrayAttr(consts)
        if p in todo:
            peaks[p.program_name] = _plan_program(p, target, image, const_ddr, lookahead)
    return MemoryPlan(image, const_ddr, peaks)


def _allocate(ops, sizes: dict[str, int], target, program: str, ends: list[int] | None = None):
    """Place the buffers by lifetime: from the first op using one to the last (to `ends[index]`, the last op
    issued while that op still runs, when given: space an op still reads or writes is not reused under it)."""
    first, last = buffer_lifetimes(ops, ends)
    unknown = sorted(set(first) - set(sizes))
    if unknown:
        raise InputError(f"plan-memory: program {program} names undeclared buffers: {', '.join(unknown[:3])}")
    return allocate([BufferRequest(b, sizes[b], first[b], last[b]) for b in first], target), first


def _plan_program(program: ProgramOp, target, image: int, const_ddr: dict[str, int], lookahead: int) -> int:
    name = program.program_name
    # -- DDR tensors after the image -------------------------------------------------------------------------------
    tensors, addr = [], image
    tensor_ddr = {}
    for t in program.tensor_descs:
        addr = _align(addr)
        tensor_ddr[t.name] = addr
        tensors.append(TensorDesc(t.name, t.role, addr, t.shape, t.dtype, t.scale, t.exp))
        addr += t.nbytes
    ddr_size = _align(max(addr, image, 1))
    if ddr_size > target.ddr_bytes:
        raise InputError(f"plan-memory: program {name} needs {ddr_size} bytes of DDR, the target has "
                         f"{target.ddr_bytes}")
    # -- on-chip buffers ---------------------------------------------------------------------------------------------
    sizes = {k: v.value.data for k, v in program.attributes[BUFFERS_ATTR].data.items()}
    ops = [op for op in program.body.block.ops if isinstance(op, AccelInstructionOp)]
    plan = first = None
    windows = [w for w in (lookahead, lookahead // 3) if w > 0] if ops else []  # 0 would mean unlimited
    if windows:
        instrs, mems = [instruction_of(o) for o in ops], [o.mem for o in ops]
    for window in windows:
        order, ends = schedule_order(instrs, mems, target, window)
        reordered = [ops[n] for n in order]
        try:
            plan, first = _allocate(reordered, sizes, target, name, ends)
        except BufferAllocationError:
            continue  # less reordering keeps fewer buffers live at once
        for op in reordered:  # the program takes the scheduled order
            op.detach()
            program.body.block.add_op(op)
        ops = reordered
        break
    if plan is None:  # the lowering's order; raises the error naming the buffer when that does not fit either
        plan, first = _allocate(ops, sizes, target, name)
    base: dict[MemAttr, int] = {buf_ref(b): plan.offsets[b][0] for b in first}
    base.update({const_ref(c): d for c, d in const_ddr.items()})
    base.update({tensor_ref(t): d for t, d in tensor_ddr.items()})
    for op in ops:  # each address field becomes its block's base + the offset, in place
        mem = op.mem
        if not mem:
            continue
        for fname, ref in mem.items():
            if ref not in base:
                raise InputError(f"plan-memory: {op.name} field {fname} names unknown {ref.space.data.value} block "
                                 f"{ref.block.data!r}")
        for spec in op.SPEC.fields:  # (in the table's order, as Instruction checks them)
            if spec.name in mem:
                op.set_field(spec.name, int(op.field(spec.name)) + base[mem[spec.name]])
        del op.properties[MEM_PROP]
    program.properties["ddr_size"] = IntegerAttr(ddr_size, i64)
    program.properties["tensors"] = ArrayAttr([tensor_attr(t) for t in tensors])
    del program.attributes[BUFFERS_ATTR]
    program.attributes[IMAGE_ATTR] = IntegerAttr(image, i64)
    program.attributes[PEAK_ATTR] = IntegerAttr(plan.peak_bytes, i64)
    return plan.peak_bytes
