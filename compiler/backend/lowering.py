"""Lowering of one quantized function onto the accelerator: `mamba`/`mamba_quant` ops -> `accel` instructions.

Place in the flow: the algorithm behind passes/lower_to_accel.py.  Input: a
`func.func` after the quantization passes (assign-scales with an int8 head,
approximate-nonlinear, fuse-elementwise), straight-line, tokens [T] in and
(logits, states...) out.  Output: an unscheduled `accel.program` of the same
name whose instructions use *symbolic* memory, plus a `func.func
@<name>_constants` holding the offline weight expressions the program's
constant blocks are packed from.  plan-memory (passes/plan_memory.py) turns
the symbolic memory into addresses; the emitter packs the constants.

Symbolic memory.  Every address field of an instruction holds an offset into
a named block; the op's `mem` attribute maps the field to the block:
`b:NAME` an on-chip buffer (the program's `buffers`), `c:NAME` a constant
block of the DDR image (the program's `consts`), `t:NAME` a DDR tensor of the
program (inputs, outputs, recurrent states).

Mapping (T tokens, per layer):
- embedding: `ld` the token ids, `ldg` the rows of the f32 table -> residual u.
- `mamba_quant.vec` -> one `vec` (row pitches let it read and write column
  slices); a row-wise norm feeding a linear runs in up to ROW_BLOCKS row blocks.
- `qlinear`: weight-stationary tiles along the output channels (each tile
  [n_t, K] int8 + its n_t f32 rescales, one DMA, `prefetch` tiles ahead), one
  `lin` per tile over all T tokens (after a norm, the first tiles by its row
  blocks: as many as keep LIN busy while VEC normalizes the next block); tiles never
  straddle a `mamba.slice` of the result, each slice is its own buffer; an
  element-wise vec reading a slice (the int16 conversions, the residual add)
  runs per tile.
- `qconv1d`, `qssm_scan` and the fused mixer front (in_proj's xBC and dt
  tiles, the conv and the scan as one unit, option fuse_front):
  compiler/backend/lower_mixer.py.
- the head: a `qlinear` on the last position; `st` logits and the
  `vec.argmax` next token.
Small buffers (`LoweringOptions.compact`, chosen by `_fit` when the default
mapping's estimate does not fit): tiles down to the LIN unit's tree count and
a budget down to 1/COMPACT_TILE_FRACTION of the buffer, a head's SSM state in
parts of its head dimension (lower_mixer.Scanner), a fused front's conv
operands loaded one chunk ahead.  Targets the default mapping fits (vc709)
get the same program as without it.
Recurrent states live in DDR as the program's `state` tensors
(`layers.{i}.conv` i16 [K-1, C], `layers.{i}.ssm` i32 [H, P, N]), read at the
start and written back: a function whose scan has no state operand starts
from them (zero for a new sequence).
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field

from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr, FloatAttr, IntegerAttr, StringAttr, f64, i64
from xdsl.ir import Operation, SSAValue

from fastmamba.compiler.backend.lower_base import (ELEMENT_BYTES, LoweringError, View, as2d, contiguous_dma, dtype_of,
                                                   layer_of, shape_of)
from fastmamba.compiler.backend.lower_batch import BatchLowering
from fastmamba.compiler.backend.lower_mixer import Front
from fastmamba.compiler.dialects import mamba
from fastmamba.compiler.dialects import mamba_quant as mq
from fastmamba.compiler.dialects.accel import (MEM_PROP, AccelInstructionOp, MemAttr, ProgramOp, buf_ref, const_ref,
                                               instruction_of, op_of, tensor_ref)
from fastmamba.compiler.quant.sites import WEIGHT_EXPRESSIONS, weight_name
from fastmamba.isa import costs
from fastmamba.isa.container import TensorDesc
from fastmamba.isa.instructions import Instruction

__all__ = ["LoweringOptions", "lower_functions", "DEFAULT_PREFETCH", "MEM_ATTR", "BUFFERS_ATTR", "CONSTS_ATTR",
           "ELEMENT_BYTES", "dtype_of"]

MEM_ATTR = MEM_PROP  # on an instruction op: address field -> #accel.mem<buf|const|tensor, "NAME">
BUFFERS_ATTR = "buffers"  # on a program: name -> bytes
CONSTS_ATTR = "consts"  # on a program: the constant blocks (dictionaries, see ConstBlock)
DEFAULT_PREFETCH = 3  # weight tiles in flight ahead of the one being multiplied
SCRATCH_RING = 2  # f32 LIN tiles converted by their consumer tile by tile
MIN_TILE_BYTES = 16 * 1024  # auto tiling stops halving the streamed-block budget here
AUTO_TILE_MARGIN = 1.25  # room left for plan-memory's reordering when the tile budget is chosen automatically
ROW_BLOCKS = 16  # a row-wise norm feeding a linear, and that linear's first tiles, run in up to this many row blocks
MIN_BLOCK_ROWS = 4  # ... when each block has at least this many rows
TILE_ALIGN = 16  # output channels of a weight tile: a multiple of this (the LIN unit's MAC tree count divides it)
COMPACT_TILE_FRACTION = 64  # compact lowering: the streamed-block budget is halved down to 1/64 of the buffer
EARLY_LOAD_PARTS = 4  # a head tile loaded during the last layer moves in this many DMAs (shorter waits for its tiles)
HEAD_FILL = 0.7  # ... and those tiles fill the buffer up to this share of it (the rest: plan-memory's reordering)


@dataclass(frozen=True)
class LoweringOptions:
    tile_bytes: int  # the on-chip budget of one streamed block (weight tile, state chunk)
    prefetch: int = DEFAULT_PREFETCH  # weight tiles loaded ahead of the tile being multiplied
    fuse_front: bool = True  # a layer's in_proj, conv and scan lowered as one unit (Front); False: op by op
    # For buffers the default mapping does not fit (auto tiling turns it on, see _fit): weight tiles of fewer
    # than TILE_ALIGN output channels (down to the LIN unit's tree count), a head's SSM state streamed in
    # parts of its head dimension, and a fused front's conv taps, bias and state loaded one chunk ahead
    # instead of all at its start.
    compact: bool = False
    # Prefill: as many of the head's first weight tiles as fit beside the last layer's buffers are loaded while
    # that layer runs (each into a buffer of its own), so that less of the head's DDR stream follows it.
    head_prefetch: bool = True


@dataclass
class _Tile:
    """One weight tile of a linear: output columns [c0, c1), its LIN op's destination, and optionally the
    vec converting it (vec, operand index) into `out` (column `col` of the vec's result)."""

    c0: int
    c1: int
    col: int
    dst: View
    consumer: tuple | None = None
    out: View | None = None
    after: Callable[[], None] | None = None  # emits what waits for this tile (a mixer front's next steps)


@dataclass
class _Const:
    name: str
    kind: str  # "lin_tile" | "conv_w" | "array"
    sources: tuple[int, ...]  # result indices of the constants function
    nbytes: int
    params: dict = field(default_factory=dict)


class _Lowering(BatchLowering):
    def __init__(self, fn: func.FuncOp, target, options: LoweringOptions):
        self.fn, self.target, self.opt = fn, target, options
        self.name = fn.sym_name.data
        self.ops: list[Operation] = []
        self.buffers: dict[str, int] = {}
        self.consts: dict[str, _Const] = {}
        self.const_values: list[SSAValue] = []
        self.const_index: dict[SSAValue, int] = {}
        self.tensors: dict[str, TensorDesc] = {}
        self.views: dict[SSAValue, View] = {}
        self.homes: dict[SSAValue, View] = {}  # preassigned destinations (joint x/B/C, slices of a linear)
        self.segments: dict[SSAValue, list[tuple[int, int, SSAValue]]] = {}  # linear result -> (c0, c1, value)
        self.skip: set[Operation] = set()
        self.fronts: dict[SSAValue, Front] = {}  # the linear slice feeding a conv -> its layer's front
        self.count = 0
        self.rings: dict[str, int] = {}
        self.head: mq.QLinearOp | None = None  # a prefill's head, whose first tiles load during the last layer
        self.last_layer: mq.QLinearOp | None = None  # ... from where the last layer's first linear starts
        self.anchor = 0  # the index in self.ops of that linear's first instruction
        self.early: set[str] = set()  # the buffers of the head's tiles loaded early
        self.idle_bytes = 0  # the bytes the DDR channel can move beside the last layer's own weights
        self.norm_block_cycles: dict[SSAValue, int] = {}  # a norm emitted by row blocks -> its first block's VEC time

    # --- emission helpers -----------------------------------------------------------------------------------
    def emit(self, op: str, args: dict, mem: dict[str, MemAttr], debug: str) -> None:
        accel = op_of(Instruction(op, args), debug)
        if mem:
            accel.properties[MEM_PROP] = DictionaryAttr(dict(mem))
        self.ops.append(accel)

    def buffer(self, hint: str, nbytes: int) -> str:
        self.count += 1
        name = f"{hint}#{self.count}"
        self.buffers[name] = max(int(nbytes), 1)
        return name

    def new_view(self, hint: str, rows: int, cols: int, dtype: str) -> View:
        name = self.buffer(hint, rows * cols * ELEMENT_BYTES[dtype])
        return View(name, 0, cols, dtype, rows, cols)

    def const_source(self, value: SSAValue) -> int:
        if value not in self.const_index:
            self.const_index[value] = len(self.const_values)
            self.const_values.append(value)
        return self.const_index[value]

    def const(self, name: str, kind: str, values: tuple[SSAValue, ...], nbytes: int, **params) -> str:
        if name in self.consts:
            raise LoweringError(f"two constant blocks named {name}")
        self.consts[name] = _Const(name, kind, tuple(self.const_source(v) for v in values), nbytes, params)
        return name

    def ring(self, kind: str, depth: int, nbytes: int) -> str:
        """The next slot of a ring of `depth` buffers shared by every block streamed through it.

        Streamed blocks (weight tiles, state chunks) cycle through their ring in program order, so the
        n-th block can be loaded only once the (n - depth)-th is consumed: loads run at most depth - 1
        blocks ahead, and streams never share space with activations (no false dependences between them)."""
        count = self.rings.get(kind, 0)
        self.rings[kind] = count + 1
        name = f"{self.name}.{kind}_ring{count % depth}"
        self.buffers[name] = max(self.buffers.get(name, 1), int(nbytes))
        return name

    def _load_early(self, cname: str, buf: str, debug: str) -> None:
        """A constant block into buffer `buf` of its own in EARLY_LOAD_PARTS DMAs (each 64-byte aligned): loaded
        beside other work, it holds the DDR channel for shorter turns."""
        nbytes = self.consts[cname].nbytes
        self.buffers[buf] = nbytes
        self.early.add(buf)
        step = -(-nbytes // EARLY_LOAD_PARTS // 64) * 64
        for part, b0 in enumerate(range(0, nbytes, step)):
            self.emit("ld", contiguous_dma(min(step, nbytes - b0), ddr=b0, buf=b0),
                      {"buf": buf_ref(buf), "ddr": const_ref(cname)}, f"{debug} part {part}")

    def load_const(self, cname: str, hint: str, debug: str, ring: tuple[str, int] | None = None) -> str:
        nbytes = self.consts[cname].nbytes
        buf = self.ring(ring[0], ring[1], nbytes) if ring else self.buffer(hint, nbytes)
        self.emit("ld", contiguous_dma(nbytes), {"buf": buf_ref(buf), "ddr": const_ref(cname)}, debug)
        return buf

    def tensor(self, name: str, role: str, shape: tuple[int, ...], dtype: str, exp: int = 0) -> str:
        self.tensors[name] = TensorDesc(name, role, 0, tuple(shape), dtype, 1.0, exp)
        return name

    def tile_align(self) -> int:
        """Output channels of a weight tile are a multiple of this: TILE_ALIGN, or with `compact` the LIN unit's
        tree count when that is smaller (a tile of fewer channels leaves trees idle)."""
        trees = self.target.lin_groups * self.target.lin_mac_trees
        return min(TILE_ALIGN, trees) if self.opt.compact else TILE_ALIGN

    def view_of(self, value: SSAValue, where: str) -> View:
        view = self.views.get(value)
        if view is None:
            owner = value.owner
            what = owner.name if isinstance(owner, Operation) else "a function argument"
            raise LoweringError(f"{where}: operand produced by {what} is not in on-chip memory (unsupported here)")
        return view

    # --- planning ---------------------------------------------------------------------------------------------
    def plan(self) -> None:
        self.position = {op: n for n, op in enumerate(self.fn.body.block.ops)}
        for op in self.fn.body.block.ops:
            if isinstance(op, mq.QSSMScanOp):
                if not (self.opt.fuse_front and self._plan_front(op)):
                    self._plan_joint(op)
            elif isinstance(op, mq.QLinearOp):
                self._plan_segments(op)
        self._plan_head()
        ret = self.fn.body.block.last_op
        assert isinstance(ret, func.ReturnOp)
        for value in ret.arguments[1:]:  # the states: their dequantizing ops only feed the return
            op = value.owner
            while isinstance(op, (mq.VecOp, mq.DequantizeOp)) and not (isinstance(op, mq.VecOp) and op.micro_ops):
                self.skip.add(op)
                op = op.operands[0].owner

    def _plan_head(self) -> None:
        """With head_prefetch, in a program whose head reads fewer rows than the layers (a prefill returning the
        last position's logits; not the decode step, whose every weight byte is on the DDR channel anyway) and
        whose last layer's LIN work outlasts its weight stream: the head and that layer's first linear, from
        where the head's first tiles are loaded (_early_tiles), as many bytes as the channel has time for."""
        linears = [op for op in self.fn.body.block.ops if isinstance(op, mq.QLinearOp)]
        if not self.opt.head_prefetch or self.slots or len(linears) < 2 or \
                as2d(linears[-1].a)[0] >= as2d(linears[-2].a)[0]:
            return
        try:
            layers = [layer_of(weight_name(op.wq)) for op in linears[:-1]]
        except LoweringError:
            return
        last = [op for op, layer in zip(linears, layers) if layer == layers[-1]]
        t = self.target  # the DDR time the last layer's LIN work leaves beside its own weight stream
        macs = sum(as2d(op.a)[0] * shape_of(op.wq)[0] * shape_of(op.wq)[1] for op in last)
        weight_bytes = sum(shape_of(op.wq)[0] * shape_of(op.wq)[1] for op in last)
        self.idle_bytes = int((macs / t.lin_macs_per_cycle - weight_bytes / t.dma_bytes_per_cycle)
                              * t.dma_bytes_per_cycle)
        if self.idle_bytes > 0:
            self.head, self.last_layer = linears[-1], last[0]

    def _early_tiles(self, sizes: list[int], held: list[str]) -> list[int]:
        """Where (indices in self.ops, nondecreasing) the head's first tiles (of `sizes` bytes) are loaded: each as
        early from the last layer's first linear on as it fits, in program order, until the head, beside every
        buffer live there (the rings while used, the weight ring and the `held` blocks, the head's input and
        result, to the end) and the tiles placed before it, within HEAD_FILL of the buffer (plan-memory's
        reordering keeps the rest), and at most idle_bytes in all."""
        end = len(self.ops)
        first, last = buffer_lifetimes(self.ops)
        delta = [0] * (end + 2)
        for block, begin in first.items():
            stop = end + 1 if block in held or "weight_ring" in block else last[block] + 1
            if stop > self.anchor:
                delta[max(begin, self.anchor)] += self.buffers[block]
                delta[stop] -= self.buffers[block]
        delta[end] += sum(self.buffers[b] for b in held if b not in first)  # not yet used: live from the head on
        live, profile = 0, []
        for index in range(end + 1):
            live += delta[index]
            if index >= self.anchor:
                profile.append(live)
        for k in range(len(profile) - 2, -1, -1):  # the most live from each index to the head
            profile[k] = max(profile[k], profile[k + 1])
        lowest_first = [-v for v in profile]
        room = int(self.target.buffer_bytes * HEAD_FILL)
        positions: list[int] = []
        placed = 0
        for nbytes in sizes:
            placed += -(-nbytes // 64) * 64
            if placed > self.idle_bytes:  # more would delay the layer's weight stream, not shorten the head's
                break
            k = bisect_left(lowest_first, placed - room)  # the first index with profile + placed <= room
            if k == len(profile):
                break
            positions.append(self.anchor + k)
        return positions

    def _plan_segments(self, op: mq.QLinearOp) -> None:
        users = [u.operation for u in op.result.uses]
        M = shape_of(op.result)[1]
        if users and all(isinstance(u, mamba.SliceOp) and u.axis.value.data == 1 for u in users):
            spans = sorted((u.start.value.data, u.start.value.data + u.size.value.data, u.result) for u in users)
            covered = 0
            for c0, c1, _ in spans:
                if c0 < covered:
                    raise LoweringError(f"{op.name}: overlapping slices of a linear's result are not supported")
                covered = c1
            self.segments[op.result] = spans
            for u in users:
                self.skip.add(u)
        else:
            self.segments[op.result] = [(0, M, op.result)]

    # --- ops --------------------------------------------------------------------------------------------------
    def run(self) -> None:
        self.plan()
        for op in list(self.fn.body.block.ops):
            if op in self.skip or isinstance(op, WEIGHT_EXPRESSIONS):
                continue
            handler = getattr(self, "_" + type(op).__name__, None)
            if handler is None:
                raise LoweringError(f"lower-to-accel: {op.name} is not supported on the accelerator"
                                    + (" (quantize the head: assign-scales{head=\"int8\"})"
                                       if isinstance(op, mamba.LMHeadOp) else ""))
            handler(op)

    def _EmbeddingOp(self, op: mamba.EmbeddingOp) -> None:
        (T,) = shape_of(op.tokens)
        V, D = shape_of(op.table)
        self.tensor("tokens", "input", (T,), "i32")
        ids = self.buffer(f"{self.name}.tokens", 4 * T)
        self.emit("ld", contiguous_dma(4 * T), {"buf": buf_ref(ids), "ddr": tensor_ref("tokens")}, "embedding tokens")
        cname = self.const("embedding", "array", (op.table,), V * D * 4, dtype="f32")
        u = self.new_view(f"{self.name}.u", T, D, "f32")
        self.emit("ldg", dict(buf=0, ddr=0, idx=0, rows=T, row_bytes=4 * D, ddr_stride=4 * D, buf_stride=4 * D,
                              limit=V, sem=0),
                  {"buf": buf_ref(u.block), "ddr": const_ref(cname), "idx": buf_ref(ids)}, "embedding")
        self.views[op.result] = u

    def _SliceOp(self, op: mamba.SliceOp) -> None:
        src = self.view_of(op.x, op.name)
        start, size = op.start.value.data, op.size.value.data
        if len(shape_of(op.x)) != 2:
            raise LoweringError(f"{op.name}: only 2-D slices are supported")
        if op.axis.value.data == 0:
            self.views[op.result] = src.at(start, 0, size, src.cols)
        else:
            self.views[op.result] = src.at(0, start, src.rows, size)

    def _VecOp(self, op: mq.VecOp) -> None:
        rows, cols = as2d(op.result)
        a = self.view_of(op.a, op.name)
        dst = self.homes.get(op.result) or self.new_view(f"{self.name}.v", rows, cols, dtype_of(op.result.type))
        blocks = _row_blocks(rows) if "rmsnorm" in op.micro_ops and (
            op.b is None or shape_of(op.b) == (rows, cols)) else [(0, rows)]
        for r0, r1 in blocks:  # a norm feeds a linear: its first rows let the first tile start (see _QLinearOp)
            b = None
            if op.b is not None and len(blocks) > 1:
                b = self._vec_operand(op.b, op.name).at(r0, 0, r1 - r0, cols)
            self._emit_vec(op, a.at(r0, 0, r1 - r0, cols), dst.at(r0, 0, r1 - r0, cols), r1 - r0, cols,
                           "" if len(blocks) == 1 else f" rows {r0}:{r1}", b=b)
            if len(blocks) > 1 and r0 == 0:  # what the linear's first tiles weigh against (_QLinearOp)
                self.norm_block_cycles[op.result] = costs.occupancy(instruction_of(self.ops[-1]), self.target)
        self.views[op.result] = dst

    def _emit_vec(self, op: mq.VecOp, a: View, dst: View, rows: int, cols: int, where: str = "",
                  b: View | None = None) -> None:
        """One `vec` computing `op` on the [rows, cols] block at `a` into `dst`; its b operand, if any, whole
        or (`b` given) the [rows, cols] block at `b`."""
        ops = list(op.micro_ops)
        if len(ops) > 4:
            raise LoweringError(f"{op.name}: {len(ops)} micro-ops, the VEC unit chains at most 4")
        mem = {"a": buf_ref(a.block), "dst": buf_ref(dst.block)}
        b_args = dict(b=0, b_type="f32", b_exp=0, b_mode="none", b_ld=cols)
        if op.b is not None:
            b_rows, _ = as2d(op.b)
            mode = "row" if len(shape_of(op.b)) == 1 or (b_rows == 1 and rows > 1) else "full"
            b = b or self._vec_operand(op.b, op.name)
            b_args = dict(b=b.offset, b_type=b.dtype, b_exp=op.b_exp.value.data, b_mode=mode,
                          b_ld=b.ld if mode == "full" else cols)
            mem["b"] = buf_ref(b.block)
        args = dict(dst=dst.offset, a=a.offset, rows=rows, cols=cols, a_ld=a.ld, dst_ld=dst.ld, a_type=a.dtype,
                    a_exp=op.a_exp.value.data, group=op.group.value.data, eps=op.eps.value.data,
                    out_type=dtype_of(op.result.type), out_scale=op.out_scale.value.data, **b_args)
        for k in range(4):
            args[f"op{k}"] = ops[k] if k < len(ops) else "none"
        self.emit("vec", args, mem, f"{op.name} {'+'.join(ops) or 'convert'}{where}")

    def _tile_consumer(self, value: SSAValue) -> tuple[mq.VecOp, int] | None:
        """The one vec reading `value` element by element (no norm) and its operand index, which can then run
        per LIN tile on a scratch tile instead of on the whole f32 result (which is then never stored): as
        its a operand with no b, or as its whole b operand (e.g. the residual add) when its a is on chip."""
        uses = list(value.uses)
        if len(uses) != 1:
            return None
        vec, index = uses[0].operation, uses[0].index
        if not isinstance(vec, mq.VecOp) or "rmsnorm" in vec.micro_ops:
            return None
        if index == 0 and vec.b is None:
            return vec, 0
        if index == 1 and vec.a is not value and vec.a in self.views and shape_of(vec.a) == shape_of(value) \
                and shape_of(vec.result) == shape_of(value):
            return vec, 1
        return None

    def _vec_operand(self, value: SSAValue, where: str) -> View:
        if value in self.views:
            return self.views[value]
        if isinstance(value.owner, WEIGHT_EXPRESSIONS):  # a weight operand (e.g. an unfolded norm weight): load it
            rows, cols = as2d(value)
            dtype = dtype_of(value.type)
            cname = self.const(f"{self.name}.vec_operand{self.count}", "array", (value,), rows * cols * 4, dtype=dtype)
            buf = self.load_const(cname, f"{self.name}.operand", where)
            view = View(buf, 0, cols, dtype, rows, cols)
            self.views[value] = view
            return view
        return self.view_of(value, where)

    def _QLinearOp(self, op: mq.QLinearOp) -> None:
        if op is self.last_layer:
            self.anchor = len(self.ops)
        a = self.view_of(op.a, op.name)
        T, K = as2d(op.a)
        if a.dtype not in ("i8", "i16"):
            raise LoweringError(f"{op.name}: LIN reads i8 or i16 activations, got {a.dtype}")
        site = (weight_name(op.wq) or f"linear{self.count}").removesuffix(".weight")
        site = site.removeprefix("backbone.").replace(".mixer", "")
        per_row = K + 4  # int8 weights and the f32 rescale of one output channel
        align = self.tile_align()
        n_max = max(align, (self.opt.tile_bytes // per_row) // align * align)
        if per_row * align > self.target.buffer_bytes // 4:
            raise LoweringError(f"{op.name} ({site}): a weight tile of {align} rows x {K} does not fit a quarter "
                                f"of the on-chip buffer ({self.target.buffer_bytes} bytes)")
        # The segment needed first is computed first (Mamba2's in_proj: xBC and dt before z, so the conv and
        # the scan overlap the z tiles); a mixer front orders its own columns (see Front).
        order = sorted(self.segments[op.result], key=lambda seg: min(
            (self.position.get(u.operation, len(self.position)) for u in seg[2].uses), default=len(self.position)))
        dt_segs = {self.fronts[value].dt_seg for _, _, value in order if value in self.fronts}
        tiles: list[_Tile] = []
        for s0, s1, value in order:
            if value in self.fronts:
                dt = next(seg for seg in order if seg[2] is self.fronts[value].dt_seg)
                self._front_tiles(self.fronts[value], s0, dt, T, n_max, site, tiles)
            elif value not in dt_segs:
                self._segment_tiles(s0, s1, value, T, n_max, site, tiles)
        act_scale = op.act_scale.value.data
        loaded = []

        def tile_bytes(j: int) -> int:
            return _round4((tiles[j].c1 - tiles[j].c0) * K) + 4 * (tiles[j].c1 - tiles[j].c0)

        def const(j: int) -> str:
            c0, c1 = tiles[j].c0, tiles[j].c1
            return self.const(f"{site}[{c0}:{c1}]", "lin_tile", (op.wq, op.wscale), tile_bytes(j), rows=[c0, c1],
                              act_scale=act_scale)

        def load(j: int) -> None:
            loaded.append(self.load_const(const(j), "", f"{op.name} {site} tile {j} weights",
                                          ring=("weight", self.opt.prefetch + 1)))
        early = 0
        if op is self.head:  # its first tiles load while the last layer runs (program order: from its first linear)
            positions = self._early_tiles([tile_bytes(j) for j in range(len(tiles))], [a.block, tiles[0].dst.block])
            early = len(positions)
            names = [const(j) for j in range(early)]  # the image's blocks in tile order, wherever they load
            for j in reversed(range(early)):
                rest = self.ops[positions[j]:]
                del self.ops[positions[j]:]
                self._load_early(names[j], f"{self.name}.{site}.tile{j}", f"{op.name} {site} tile {j} weights")
                self.ops.extend(rest)
            loaded.extend(f"{self.name}.{site}.tile{j}" for j in range(early))
        for j in range(early, min(early + self.opt.prefetch, len(tiles))):
            load(j)

        def lin_args(j: int, r0: int, r1: int) -> dict:
            n, dst = tiles[j].c1 - tiles[j].c0, tiles[j].dst
            src, out = a.at(r0, 0, r1 - r0, K), dst.at(r0, 0, r1 - r0, n)
            return dict(dst=out.offset, src=src.offset, wgt=0, scale=_round4(n * K), m=r1 - r0, k=K, n=n, src_ld=a.ld,
                        dst_ld=dst.ld, src_type=a.dtype, hlog2=op.hlog2.value.data, qmul=op.qmul.value.data,
                        qshift=op.qshift.value.data, acc=0, out="f32")

        def lin(j: int, r0: int, r1: int) -> None:
            self.emit("lin", lin_args(j, r0, r1), {"dst": buf_ref(tiles[j].dst.block), "src": buf_ref(a.block),
                                                   "wgt": buf_ref(loaded[j]), "scale": buf_ref(loaded[j])},
                      f"{op.name} {site} tile {j}" + (f" rows {r0}:{r1}" if r1 - r0 < T else ""))
        # The first tiles by row blocks, each block over all of them: the LIN unit starts on the first rows of
        # its input (a norm, see _VecOp), with as many tiles per block (of those loaded ahead) as it takes to
        # keep LIN busy while VEC normalizes the next block.
        blocks = _row_blocks(T)
        blocked = 0
        if len(blocks) > 1:
            most = _distinct_tiles(tiles, max(1, min(len(loaded), self.opt.prefetch)))
            r0, r1 = blocks[0]
            work = 0
            while blocked < most and (blocked == 0 or work < self.norm_block_cycles.get(op.a, 0)):
                work += costs.occupancy(Instruction("lin", lin_args(blocked, r0, r1)), self.target)
                blocked += 1
        for r0, r1 in blocks if blocked else []:
            for j in range(blocked):
                lin(j, r0, r1)
        for j, tile in enumerate(tiles):
            n, dst = tile.c1 - tile.c0, tile.dst
            if j >= blocked:
                lin(j, 0, T)
            if tile.consumer is not None:
                vec, operand = tile.consumer
                if operand == 0:
                    self._emit_vec(vec, dst, tile.out, T, n, f" ({site} tile {j})")
                else:
                    a_tile = self.views[vec.a].at(0, tile.col, T, n)
                    self._emit_vec(vec, a_tile, tile.out, T, n, f" ({site} tile {j})", b=dst)
            if early <= j and j + self.opt.prefetch < len(tiles):
                load(j + self.opt.prefetch)
            if tile.after is not None:
                tile.after()

    def _segment_tiles(self, s0: int, s1: int, value: SSAValue, T: int, n_max: int, site: str,
                       tiles: list["_Tile"], out: View | None = None, after=None) -> None:
        """The weight tiles of a linear's columns [s0, s1) (the slice `value`): into the slice's buffer, or
        (when one vec reads the slice element by element) into a scratch ring converted tile by tile into
        `out` (default: a new buffer for the vec's result).  `after` runs once the last tile is done."""
        consumer, operand = self._tile_consumer(value) or (None, 0)
        if consumer is not None:  # f32 tiles in a scratch ring, converted by the consumer tile by tile
            self.skip.add(consumer)
            if out is None:
                out = self.homes.get(consumer.result) or self.new_view(
                    f"{self.name}.{site}.out", T, s1 - s0, dtype_of(consumer.result.type))
                self.views[consumer.result] = out
        else:
            out = self.homes.get(value) or self.new_view(f"{self.name}.{site}.out", T, s1 - s0, "f32")
            self.views[value] = out
        for c0 in range(s0, s1, n_max):
            c1 = min(s1, c0 + n_max)
            block = out.at(0, c0 - s0, T, c1 - c0)
            if consumer is None:
                tiles.append(_Tile(c0, c1, c0 - s0, block))
            else:
                scratch = self.ring("lin_out", SCRATCH_RING, T * (c1 - c0) * 4)
                tiles.append(_Tile(c0, c1, c0 - s0, View(scratch, 0, c1 - c0, "f32", T, c1 - c0),
                                   (consumer, operand), block))
        tiles[-1].after = after

    def _ReturnOp(self, op: func.ReturnOp) -> None:
        logits = self.view_of(op.arguments[0], "func.return")
        rows, V = as2d(op.arguments[0])
        want = self.slots or 1  # a batched decode step (lower_batch): one row per slot
        if rows != want or logits.dtype != "f32":
            raise LoweringError(f"the program must return the f32 logits of {want} position(s), got {rows} x {V} "
                                f"{logits.dtype}")
        self.tensor("logits", "output", (rows, V), "f32")
        dma = contiguous_dma(4 * V, buf=logits.offset) if rows == 1 else dict(
            buf=logits.offset, ddr=0, rows=rows, row_bytes=4 * V, ddr_stride=4 * V, buf_stride=4 * logits.ld, sem=0)
        self.emit("st", dma, {"buf": buf_ref(logits.block), "ddr": tensor_ref("logits")}, "logits")
        tok = self.buffer(f"{self.name}.next_token", 4 * rows)
        self.emit("vec.argmax", dict(dst=0, a=logits.offset, rows=rows, cols=V), {"dst": buf_ref(tok),
                                                                                  "a": buf_ref(logits.block)},
                  "next token")
        self.tensor("next_token", "output", (rows,), "i32")
        self.emit("st", contiguous_dma(4 * rows), {"buf": buf_ref(tok), "ddr": tensor_ref("next_token")},
                  "next token")


def _distinct_tiles(tiles: list[_Tile], most: int) -> int:
    """How many of the first tiles (at most `most`: those loaded ahead) can run by row blocks before any of
    their consumers: as many as write distinct places (tiles converted by a vec share a scratch ring)."""
    seen: set[tuple[str, int]] = set()
    for j, tile in enumerate(tiles[:most]):
        if (tile.dst.block, tile.dst.offset) in seen:
            return j
        seen.add((tile.dst.block, tile.dst.offset))
    return min(most, len(tiles))


def _row_blocks(rows: int) -> list[tuple[int, int]]:
    """Row ranges a norm and the first weight tiles after it are split into: up to ROW_BLOCKS of at least
    MIN_BLOCK_ROWS rows, or one when fewer than half as many would be (a short prefill, a batched decode step)."""
    count = min(ROW_BLOCKS, rows // MIN_BLOCK_ROWS)
    if count < ROW_BLOCKS // 2:
        return [(0, rows)]
    step = -(-rows // count)
    return [(r, min(rows, r + step)) for r in range(0, rows, step)]


def _round4(n: int) -> int:
    return -(-n // 4) * 4


def _constants_function(name: str, fn: func.FuncOp, values: list[SSAValue]) -> func.FuncOp:
    """A function returning `values` (offline weight expressions of `fn`), its ops cloned in order."""
    needed: set[Operation] = set()
    stack = [v.owner for v in values]
    while stack:
        op = stack.pop()
        if isinstance(op, Operation) and op not in needed:
            needed.add(op)
            stack.extend(o.owner for o in op.operands)
    mapping: dict[SSAValue, SSAValue] = {}
    body = []
    for op in fn.body.block.ops:
        if op in needed:
            clone = op.clone(value_mapper=mapping)
            body.append(clone)
    ret = func.ReturnOp(*[mapping[v] for v in values])
    out = func.FuncOp(name, ([], [v.type for v in values]))
    out.body.block.add_ops([*body, ret])
    return out


def buffer_lifetimes(ops, ends: list[int] | None = None) -> tuple[dict[str, int], dict[str, int]]:
    """Per on-chip buffer (#accel.mem<buf, ...> in the ops' `mem`) the index of the first op using it and of the
    last, or with `ends` the largest ends[index] over the ops using it."""
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for index, op in enumerate(ops):
        for ref in op.mem.values() if isinstance(op, AccelInstructionOp) else ():
            if ref.on_chip:
                block = ref.block.data
                first.setdefault(block, index)
                last[block] = max(last.get(block, 0), ends[index] if ends else index)
    return first, last


def on_chip_estimate(low: "_Lowering") -> int:
    """Bytes the program needs on chip at its busiest point in program order: the rings (live throughout)
    plus the activations live at once (plan-memory's reordering may move that peak a little); the head's
    early tiles, placed in what this leaves (_early_tiles), are not counted."""
    ring = sum(n for name, n in low.buffers.items() if "_ring" in name)
    first, last = buffer_lifetimes(low.ops)
    delta = [0] * (len(low.ops) + 1)
    for block, start in first.items():
        if "_ring" in block or block in low.early:
            continue
        delta[start] += low.buffers[block]
        delta[last[block] + 1] -= low.buffers[block]
    live = peak = 0
    for d in delta:
        live += d
        peak = max(peak, live)
    return ring + peak


def lower_functions(fns: list[func.FuncOp], target, options: LoweringOptions,
                    auto_tile: bool = False) -> list[tuple[ProgramOp, func.FuncOp]]:
    """The unscheduled, symbolic-memory program of each of `fns` and the function computing its constants.

    auto_tile: each function's streamed-block budget is halved (down to
    MIN_TILE_BYTES) while its estimated on-chip need (on_chip_estimate, with a margin for plan-memory's
    reordering) exceeds the buffer, and all take the smallest budget any needs: the programs then tile
    alike and share the constant image's blocks (a prefill and its decode step)."""
    lowered = [_fit(fn, target, options, auto_tile) for fn in fns]
    budget = min((low.opt.tile_bytes for low in lowered), default=options.tile_bytes)
    compact = any(low.opt.compact for low in lowered)
    lowered = [low if (low.opt.tile_bytes, low.opt.compact) == (budget, compact) else
               _fit(low.fn, target, dataclasses.replace(low.opt, tile_bytes=budget, compact=compact), False)
               for low in lowered]
    return [_finish(low) for low in lowered]


def _fit(fn: func.FuncOp, target, options: LoweringOptions, auto_tile: bool) -> _Lowering:
    """`fn` lowered with `options`; with auto_tile the budget is halved down to MIN_TILE_BYTES while the estimate
    does not fit, then (a small buffer) the compact mapping is tried, halving down to 1/COMPACT_TILE_FRACTION
    of the buffer.  The last attempt is returned either way (plan-memory names what does not fit)."""
    def fits(low: _Lowering) -> bool:
        return on_chip_estimate(low) * AUTO_TILE_MARGIN <= target.buffer_bytes

    low = _Lowering(fn, target, options)
    low.run()
    while auto_tile and options.tile_bytes > MIN_TILE_BYTES and not fits(low):
        options = dataclasses.replace(options, tile_bytes=options.tile_bytes // 2)
        low = _Lowering(fn, target, options)
        low.run()
    if not auto_tile or fits(low):
        return low
    floor = max(1, target.buffer_bytes // COMPACT_TILE_FRACTION)
    options = dataclasses.replace(options, compact=True)
    while True:
        low = _Lowering(fn, target, options)
        low.run()
        if fits(low) or options.tile_bytes // 2 < floor:
            return low
        options = dataclasses.replace(options, tile_bytes=options.tile_bytes // 2)


def _finish(low: _Lowering) -> tuple[ProgramOp, func.FuncOp]:
    fn = low.fn
    name = fn.sym_name.data
    const_fn = _constants_function(f"{name}_constants", fn, low.const_values)
    program = ProgramOp(name, 0, tuple(low.tensors.values()), low.ops)
    program.attributes[BUFFERS_ATTR] = DictionaryAttr({k: IntegerAttr(v, i64) for k, v in low.buffers.items()})
    program.attributes[CONSTS_ATTR] = ArrayAttr([
        DictionaryAttr({"name": StringAttr(c.name), "kind": StringAttr(c.kind), "bytes": IntegerAttr(c.nbytes, i64),
                        "function": StringAttr(const_fn.sym_name.data),
                        "sources": ArrayAttr([IntegerAttr(s, i64) for s in c.sources]),
                        **{k: _param_attr(v) for k, v in c.params.items()}})
        for c in low.consts.values()])
    return program, const_fn


def _param_attr(v):
    if isinstance(v, str):
        return StringAttr(v)
    if isinstance(v, float):
        return FloatAttr(v, f64)
    if isinstance(v, list):
        return ArrayAttr([IntegerAttr(int(x), i64) for x in v])
    return IntegerAttr(int(v), i64)
