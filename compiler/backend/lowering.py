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
  slices); the x, B and C operands of a scan are written into one joint
  [T, d_inner + 2 G N] buffer, as the SSM unit reads them.
- `qlinear`: weight-stationary tiles along the output channels (each tile
  [n_t, K] int8 + its n_t f32 rescales, one DMA, `prefetch` tiles ahead), one
  `lin` per tile over all T tokens; tiles never straddle a `mamba.slice` of
  the result, each slice is its own buffer; an element-wise vec reading a
  slice (the int16 conversions, the residual add) runs per tile.
- `qconv1d` -> `ld` state, weights, bias; one `conv` (upd = 1); `st` state.
- `qssm_scan` -> per chunk of heads (state bytes within the tile budget, at
  B/C group boundaries): `ld` state chunk, `ssm`, `st` state chunk.
- the mixer front (option fuse_front, default): in_proj's xBC and dt tiles,
  the conv and the scan as one unit (`_Front`): B|C and dt first, then x
  head chunk by head chunk, each chunk's conv (a channel range: its state
  moved with strided DMA), SiLU and SSM op right after its tiles, so the
  scan runs beside in_proj instead of after it.
- the head: a `qlinear` on the last position; `st` logits and the
  `vec.argmax` next token.
Recurrent states live in DDR as the program's `state` tensors
(`layers.{i}.conv` i16 [K-1, C], `layers.{i}.ssm` i32 [H, P, N]), read at the
start and written back: a function whose scan has no state operand starts
from them (zero for a new sequence).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr, FloatAttr, IntegerAttr, StringAttr, f64, i64
from xdsl.ir import Operation, SSAValue

from compiler.dialects import mamba
from compiler.dialects import mamba_quant as mq
from compiler.dialects.accel import ProgramOp, op_of
from compiler.quant.sites import WEIGHT_EXPRESSIONS, weight_name
from isa.container import TensorDesc
from isa.errors import InputError
from isa.instructions import Instruction

__all__ = ["LoweringOptions", "lower_functions", "DEFAULT_PREFETCH", "MEM_ATTR", "BUFFERS_ATTR", "CONSTS_ATTR",
           "ELEMENT_BYTES", "dtype_of"]

MEM_ATTR = "mem"  # on an instruction op: address field -> "b:NAME" / "c:NAME" / "t:NAME"
BUFFERS_ATTR = "buffers"  # on a program: name -> bytes
CONSTS_ATTR = "consts"  # on a program: the constant blocks (dictionaries, see ConstBlock)
ELEMENT_BYTES = {"i8": 1, "i16": 2, "i32": 4, "f32": 4}
DEFAULT_PREFETCH = 3  # weight tiles in flight ahead of the one being multiplied
STATE_RING = 2  # SSM state chunks: double-buffered
SCRATCH_RING = 2  # f32 LIN tiles converted by their consumer tile by tile
MIN_TILE_BYTES = 16 * 1024  # auto tiling stops halving the streamed-block budget here
AUTO_TILE_MARGIN = 1.25  # room left for plan-memory's reordering when the tile budget is chosen automatically
ROW_BLOCKS = 4  # a row-wise norm feeding a linear, and that linear's first tile, run in this many row blocks
MIN_BLOCK_ROWS = 8  # ... when each block has at least this many rows
TILE_ALIGN = 16  # output channels of a weight tile: a multiple of this (the LIN unit's MAC tree count divides it)
_LAYER = re.compile(r"layers\.(\d+)\.")


class LoweringError(InputError):
    """IR the accelerator lowering does not support (names the op)."""


@dataclass(frozen=True)
class LoweringOptions:
    tile_bytes: int  # the on-chip budget of one streamed block (weight tile, state chunk)
    prefetch: int = DEFAULT_PREFETCH  # weight tiles loaded ahead of the tile being multiplied
    fuse_front: bool = True  # a layer's in_proj, conv and scan lowered as one unit (_Front); False: op by op


def dtype_of(typ) -> str:
    """The element type name (i8, i16, i32, f32) of a tensor type."""
    name = mq.int_type_name(typ.element_type)
    if name is not None:
        return name
    if str(typ.element_type) == "f32":
        return "f32"
    raise LoweringError(f"unsupported element type {typ.element_type}")


@dataclass(frozen=True)
class View:
    """A 2-D row-major tensor in a buffer: block, byte offset, row pitch (elements), element type."""

    block: str
    offset: int
    ld: int
    dtype: str
    rows: int
    cols: int

    @property
    def esize(self) -> int:
        return ELEMENT_BYTES[self.dtype]

    def at(self, row: int = 0, col: int = 0, rows: int | None = None, cols: int | None = None) -> "View":
        return View(self.block, self.offset + (row * self.ld + col) * self.esize, self.ld, self.dtype,
                    self.rows - row if rows is None else rows, self.cols - col if cols is None else cols)


@dataclass(frozen=True)
class _Front:
    """A layer's mixer front lowered as one unit, so that the scan starts early.

    in_proj's xBC columns are computed B and C first, then dt, then x head chunk by head chunk; the
    depthwise conv runs per channel range as soon as its columns are there (B|C, then each x chunk), and
    each chunk's SiLU and SSM op follow its conv.  Every SSM op gets its own [T, h P + 2 g N] buffer (its
    x columns, then its groups' B and C, SiLU'd into it from the B|C conv output), so that no op waits
    for a neighbour's columns of a shared, pitched buffer."""

    seg: SSAValue  # the linear's xBC slice (converted by `convert`, read by the conv)
    dt_seg: SSAValue  # the linear's dt slice
    convert: mq.VecOp
    conv: mq.QConv1dOp
    scan: mq.QSSMScanOp
    chunks: list[tuple[int, int]]  # (first head, heads) of each SSM op


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


def _shape(value: SSAValue) -> tuple[int, ...]:
    return tuple(value.type.get_shape())


def _as2d(value: SSAValue) -> tuple[int, int]:
    shape = _shape(value)
    if len(shape) == 1:
        return 1, shape[0]
    if len(shape) != 2:
        raise LoweringError(f"expected a 1-D or 2-D tensor, got shape {list(shape)}")
    return shape


def _layer_of(name: str | None) -> int:
    m = _LAYER.search(name or "")
    if m is None:
        raise LoweringError(f"cannot tell the layer of weight {name!r}")
    return int(m.group(1))


def _pow2_exp(scale: float) -> int:
    e = math.log2(scale)
    if e != round(e):
        raise LoweringError(f"a fixed-point format needs a power-of-two scale, got {scale}")
    return int(round(e))


class _Lowering:
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
        self.fronts: dict[SSAValue, _Front] = {}  # the linear slice feeding a conv -> its layer's front
        self.state_store: dict[SSAValue, str] = {}  # new-state value -> DDR state tensor
        self.count = 0
        self.rings: dict[str, int] = {}

    # --- emission helpers -----------------------------------------------------------------------------------
    def emit(self, op: str, args: dict, mem: dict[str, str], debug: str) -> None:
        accel = op_of(Instruction(op, args), debug)
        if mem:
            accel.attributes[MEM_ATTR] = DictionaryAttr({k: StringAttr(v) for k, v in mem.items()})
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

    def load_const(self, cname: str, hint: str, debug: str, ring: tuple[str, int] | None = None) -> str:
        nbytes = self.consts[cname].nbytes
        buf = self.ring(ring[0], ring[1], nbytes) if ring else self.buffer(hint, nbytes)
        self.emit("ld", dict(buf=0, ddr=0, rows=1, row_bytes=nbytes, ddr_stride=nbytes, buf_stride=nbytes, sem=0),
                  {"buf": "b:" + buf, "ddr": "c:" + cname}, debug)
        return buf

    def tensor(self, name: str, role: str, shape: tuple[int, ...], dtype: str, exp: int = 0) -> str:
        self.tensors[name] = TensorDesc(name, role, 0, tuple(shape), dtype, 1.0, exp)
        return name

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
        ret = self.fn.body.block.last_op
        assert isinstance(ret, func.ReturnOp)
        for value in ret.arguments[1:]:  # the states: their dequantizing ops only feed the return
            op = value.owner
            while isinstance(op, (mq.VecOp, mq.DequantizeOp)) and not (isinstance(op, mq.VecOp) and op.micro_ops):
                self.skip.add(op)
                op = op.operands[0].owner

    def _plan_front(self, op: mq.QSSMScanOp) -> bool:
        """Plan the mixer front of `op`'s layer as one unit (see _Front) when the IR has its shape: the
        scan's x, B, C are column slices of one conv's output, each through one vec; the conv reads one
        slice of a linear's result through one converting vec, and the scan's dt is another slice of that
        result through one vec.  False (nothing planned) otherwise."""
        T, xw = _as2d(op.x)
        bw = _as2d(op.B)[1]
        source = self._conv_columns(op, xw, bw)
        if source is None:
            return False
        conv = source.owner
        segs = {}
        for value in (conv.x, op.dt_raw):
            vec = value.owner
            seg = vec.a if isinstance(vec, mq.VecOp) else None
            lin = seg.owner.x.owner if seg is not None and isinstance(seg.owner, mamba.SliceOp) else None
            if not isinstance(lin, mq.QLinearOp) or lin.result not in self.segments or len(list(value.uses)) != 1 \
                    or seg not in [v for _, _, v in self.segments[lin.result]] or self._tile_consumer(seg) != (vec, 0):
                return False
            segs[value] = (lin, seg)
        (lin, seg), (dt_lin, dt_seg) = segs[conv.x], segs[op.dt_raw]
        if lin is not dt_lin:
            return False
        H, P, N = _shape(op.new_state)
        self.fronts[seg] = _Front(seg, dt_seg, conv.x.owner, conv, op, self._scan_chunks(H, P, N, bw // N))
        self.skip.update({conv, op})
        for value in (op.x, op.B, op.C):
            self.skip.update({value.owner, value.owner.a.owner})
        return True

    def _scan_chunks(self, H: int, P: int, N: int, G: int) -> list[tuple[int, int]]:
        """(first head, heads) of each SSM op of a scan: state bytes within the tile budget, at B/C group
        boundaries (a chunk within one group, or whole groups)."""
        hpg = H // G
        limit = max(1, self.opt.tile_bytes // (P * N * 4))
        hc = max(c for c in range(1, min(limit, H) + 1) if hpg % c == 0 or (c % hpg == 0))
        return [(h0, min(hc, H - h0)) for h0 in range(0, H, hc)]

    def _plan_joint(self, op: mq.QSSMScanOp) -> None:
        T, xw = _as2d(op.x)
        bw = _as2d(op.B)[1]
        source = self._conv_columns(op, xw, bw)
        if source is not None:  # x, B, C are rewritten in place over the conv output's columns (same layout)
            view = self.new_view(f"{self.name}.conv_out", T, xw + 2 * bw, "i16")
            self.homes[source] = view
        else:
            view = self.new_view(f"{self.name}.xbc", T, xw + 2 * bw, "i16")
        for value, col in ((op.x, 0), (op.B, xw), (op.C, xw + bw)):
            if len(list(value.uses)) != 1 or not isinstance(value.owner, mq.VecOp):
                raise LoweringError(f"{op.name}: x, B and C must each come from one mamba_quant.vec used only by "
                                    f"the scan (run fuse-elementwise)")
            self.homes[value] = view.at(0, col, T, _as2d(value)[1])

    def _conv_columns(self, op: mq.QSSMScanOp, xw: int, bw: int) -> SSAValue | None:
        """The i16 conv output whose columns x | B | C the scan's operands are computed from, one vec each,
        when nothing else reads it (then each vec can write its slice in place), else None."""
        source = None
        for value, col in ((op.x, 0), (op.B, xw), (op.C, xw + bw)):
            vec = value.owner
            sl = vec.a.owner if isinstance(vec, mq.VecOp) else None
            if not isinstance(sl, mamba.SliceOp) or sl.axis.value.data != 1 or sl.start.value.data != col:
                return None
            if dtype_of(value.type) != "i16" or dtype_of(sl.x.type) != "i16" or vec.b is not None:
                return None
            if source not in (None, sl.x) or not isinstance(sl.x.owner, mq.QConv1dOp):
                return None
            source = sl.x
        if source is None or _as2d(source)[1] != xw + 2 * bw or len(list(source.uses)) != 3:
            return None
        return source

    def _plan_segments(self, op: mq.QLinearOp) -> None:
        users = [u.operation for u in op.result.uses]
        M = _shape(op.result)[1]
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
        (T,) = _shape(op.tokens)
        V, D = _shape(op.table)
        self.tensor("tokens", "input", (T,), "i32")
        ids = self.buffer(f"{self.name}.tokens", 4 * T)
        self.emit("ld", dict(buf=0, ddr=0, rows=1, row_bytes=4 * T, ddr_stride=4 * T, buf_stride=4 * T, sem=0),
                  {"buf": "b:" + ids, "ddr": "t:tokens"}, "embedding tokens")
        cname = self.const("embedding", "array", (op.table,), V * D * 4, dtype="f32")
        u = self.new_view(f"{self.name}.u", T, D, "f32")
        self.emit("ldg", dict(buf=0, ddr=0, idx=0, rows=T, row_bytes=4 * D, ddr_stride=4 * D, buf_stride=4 * D,
                              limit=V, sem=0),
                  {"buf": "b:" + u.block, "ddr": "c:" + cname, "idx": "b:" + ids}, "embedding")
        self.views[op.result] = u

    def _SliceOp(self, op: mamba.SliceOp) -> None:
        src = self.view_of(op.x, op.name)
        start, size = op.start.value.data, op.size.value.data
        if len(_shape(op.x)) != 2:
            raise LoweringError(f"{op.name}: only 2-D slices are supported")
        if op.axis.value.data == 0:
            self.views[op.result] = src.at(start, 0, size, src.cols)
        else:
            self.views[op.result] = src.at(0, start, src.rows, size)

    def _VecOp(self, op: mq.VecOp) -> None:
        rows, cols = _as2d(op.result)
        a = self.view_of(op.a, op.name)
        dst = self.homes.get(op.result) or self.new_view(f"{self.name}.v", rows, cols, dtype_of(op.result.type))
        blocks = _row_blocks(rows) if "rmsnorm" in op.micro_ops and (
            op.b is None or _shape(op.b) == (rows, cols)) else [(0, rows)]
        for r0, r1 in blocks:  # a norm feeds a linear: its first rows let the first tile start (see _QLinearOp)
            b = None
            if op.b is not None and len(blocks) > 1:
                b = self._vec_operand(op.b, op.name).at(r0, 0, r1 - r0, cols)
            self._emit_vec(op, a.at(r0, 0, r1 - r0, cols), dst.at(r0, 0, r1 - r0, cols), r1 - r0, cols,
                           "" if len(blocks) == 1 else f" rows {r0}:{r1}", b=b)
        self.views[op.result] = dst

    def _emit_vec(self, op: mq.VecOp, a: View, dst: View, rows: int, cols: int, where: str = "",
                  b: View | None = None) -> None:
        """One `vec` computing `op` on the [rows, cols] block at `a` into `dst`; its b operand, if any, whole
        or (`b` given) the [rows, cols] block at `b`."""
        ops = list(op.micro_ops)
        if len(ops) > 4:
            raise LoweringError(f"{op.name}: {len(ops)} micro-ops, the VEC unit chains at most 4")
        mem = {"a": "b:" + a.block, "dst": "b:" + dst.block}
        b_args = dict(b=0, b_type="f32", b_exp=0, b_mode="none", b_ld=cols)
        if op.b is not None:
            b_rows, _ = _as2d(op.b)
            mode = "row" if len(_shape(op.b)) == 1 or (b_rows == 1 and rows > 1) else "full"
            b = b or self._vec_operand(op.b, op.name)
            b_args = dict(b=b.offset, b_type=b.dtype, b_exp=op.b_exp.value.data, b_mode=mode,
                          b_ld=b.ld if mode == "full" else cols)
            mem["b"] = "b:" + b.block
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
        if index == 1 and vec.a is not value and vec.a in self.views and _shape(vec.a) == _shape(value) \
                and _shape(vec.result) == _shape(value):
            return vec, 1
        return None

    def _vec_operand(self, value: SSAValue, where: str) -> View:
        if value in self.views:
            return self.views[value]
        if isinstance(value.owner, WEIGHT_EXPRESSIONS):  # a weight operand (e.g. an unfolded norm weight): load it
            rows, cols = _as2d(value)
            dtype = dtype_of(value.type)
            cname = self.const(f"{self.name}.vec_operand{self.count}", "array", (value,), rows * cols * 4, dtype=dtype)
            buf = self.load_const(cname, f"{self.name}.operand", where)
            view = View(buf, 0, cols, dtype, rows, cols)
            self.views[value] = view
            return view
        return self.view_of(value, where)

    def _QLinearOp(self, op: mq.QLinearOp) -> None:
        a = self.view_of(op.a, op.name)
        T, K = _as2d(op.a)
        if a.dtype not in ("i8", "i16"):
            raise LoweringError(f"{op.name}: LIN reads i8 or i16 activations, got {a.dtype}")
        site = (weight_name(op.wq) or f"linear{self.count}").removesuffix(".weight")
        site = site.removeprefix("backbone.").replace(".mixer", "")
        per_row = K + 4  # int8 weights and the f32 rescale of one output channel
        n_max = max(TILE_ALIGN, (self.opt.tile_bytes // per_row) // TILE_ALIGN * TILE_ALIGN)
        if per_row * TILE_ALIGN > self.target.buffer_bytes // 4:
            raise LoweringError(f"{op.name} ({site}): a weight tile of {TILE_ALIGN} rows x {K} does not fit a quarter "
                                f"of the on-chip buffer ({self.target.buffer_bytes} bytes)")
        # The segment needed first is computed first (Mamba2's in_proj: xBC and dt before z, so the conv and
        # the scan overlap the z tiles); a mixer front orders its own columns (see _Front).
        order = sorted(self.segments[op.result], key=lambda seg: min(
            (self.position.get(u.operation, len(self.position)) for u in seg[2].uses), default=len(self.position)))
        fronts = [self.fronts[value] for _, _, value in order if value in self.fronts]
        dt_segs = {front.dt_seg for front in fronts}
        tiles: list[_Tile] = []
        for s0, s1, value in order:
            if value in self.fronts:
                dt = next(seg for seg in order if seg[2] is self.fronts[value].dt_seg)
                self._front_tiles(self.fronts[value], s0, dt, T, n_max, site, tiles)
            elif value not in dt_segs:
                self._segment_tiles(s0, s1, value, T, n_max, site, tiles)
        act_scale = op.act_scale.value.data
        loaded = []

        def load(j: int) -> None:
            c0, c1 = tiles[j].c0, tiles[j].c1
            n = c1 - c0
            nbytes = _round4(n * K) + 4 * n
            cname = self.const(f"{site}[{c0}:{c1}]", "lin_tile", (op.wq, op.wscale), nbytes, rows=[c0, c1],
                               act_scale=act_scale)
            loaded.append(self.load_const(cname, "", f"{op.name} {site} tile {j} weights",
                                          ring=("weight", self.opt.prefetch + 1)))
        for j in range(min(self.opt.prefetch, len(tiles))):
            load(j)
        for j, tile in enumerate(tiles):
            n, dst = tile.c1 - tile.c0, tile.dst
            # the first tile by row blocks: it starts on the first rows of its input (a norm, see _VecOp)
            for r0, r1 in (_row_blocks(T) if j == 0 else [(0, T)]):
                src, out = a.at(r0, 0, r1 - r0, K), dst.at(r0, 0, r1 - r0, n)
                self.emit("lin", dict(dst=out.offset, src=src.offset, wgt=0, scale=_round4(n * K), m=r1 - r0, k=K,
                                      n=n, src_ld=a.ld, dst_ld=dst.ld, src_type=a.dtype, hlog2=op.hlog2.value.data,
                                      qmul=op.qmul.value.data, qshift=op.qshift.value.data, acc=0, out="f32"),
                          {"dst": "b:" + dst.block, "src": "b:" + a.block, "wgt": "b:" + loaded[j],
                           "scale": "b:" + loaded[j]}, f"{op.name} {site} tile {j}" + (
                              f" rows {r0}:{r1}" if r1 - r0 < T else ""))
            if tile.consumer is not None:
                vec, operand = tile.consumer
                if operand == 0:
                    self._emit_vec(vec, dst, tile.out, T, n, f" ({site} tile {j})")
                else:
                    a_tile = self.views[vec.a].at(0, tile.col, T, n)
                    self._emit_vec(vec, a_tile, tile.out, T, n, f" ({site} tile {j})", b=dst)
            if j + self.opt.prefetch < len(tiles):
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

    def _front_tiles(self, front: _Front, s0: int, dt: tuple, T: int, n_max: int, site: str,
                     tiles: list["_Tile"]) -> None:
        """A mixer front's tiles (B|C, dt, then x chunk by chunk, see _Front) with its conv, SiLU and SSM
        ops emitted after the tiles they need; the conv's weights and state are loaded now."""
        conv, scan = front.conv, front.scan
        xw, GN = _as2d(scan.x)[1], _as2d(scan.B)[1]
        H, P, N = _shape(scan.new_state)
        G, C = GN // N, xw + 2 * GN
        hpg = H // G
        layer = _layer_of(weight_name(conv.weight))
        conv_state = self._conv_state(conv, layer, C)
        ranges = [(xw, C)] + [(h0 * P, (h0 + h) * P) for h0, h in front.chunks]
        loads = {r: self._conv_loads(conv, layer, conv_state, *r) for r in ranges}
        bc_in = self.new_view(f"{self.name}.l{layer}.bc_in", T, 2 * GN, "i16")
        bc = self.new_view(f"{self.name}.l{layer}.bc_conv", T, 2 * GN, "i16")
        scanner = _Scanner(self, scan, layer, front.chunks)
        vec_of = {value: value.owner for value in (scan.x, scan.B, scan.C)}
        ready: list[tuple[View, int, int]] = []  # each chunk's x|B|C buffer and its B and C offsets

        def conv_bc() -> None:
            self._emit_conv(conv, layer, conv_state, loads[(xw, C)], bc_in, bc, xw, C)
            scanner.load(0)

        def chunk_front(c: int, x_in: View) -> None:
            h0, h = front.chunks[c]
            g0, g1 = h0 // hpg, (h0 + h - 1) // hpg + 1
            gc = g1 - g0
            buf = self.new_view(f"{self.name}.l{layer}.xbc{c}", T, h * P + 2 * gc * N, "i16")
            x = buf.at(0, 0, T, h * P)
            self._emit_conv(conv, layer, conv_state, loads[(h0 * P, (h0 + h) * P)], x_in, x, h0 * P, (h0 + h) * P)
            self._emit_vec(vec_of[scan.x], x, x, T, h * P, f" (heads {h0}+{h})")
            for k, value in enumerate((scan.B, scan.C)):
                self._emit_vec(vec_of[value], bc.at(0, k * GN + g0 * N, T, gc * N), buf.at(0, h * P + k * gc * N),
                               T, gc * N, f" (heads {h0}+{h})")
            ready.append((buf, h * P, h * P + gc * N))
            # a chunk's SSM op follows the next chunk's tiles in program order: by then the op before it has
            # (nearly) left the SSM unit, so it does not hold plan-memory's bounded reordering window
            if c > 0:
                scanner.scan(c - 1, *ready[c - 1])
            if c + 1 == len(front.chunks):
                scanner.scan(c, *ready[c])
                scanner.finish()

        self.skip.add(front.convert)
        self._segment_tiles(s0 + xw, s0 + C, front.seg, T, n_max, site, tiles, out=bc_in, after=conv_bc)
        self._segment_tiles(*dt, T, n_max, site, tiles)
        for c, (h0, h) in enumerate(front.chunks):
            x_in = self.new_view(f"{self.name}.l{layer}.x_in", T, h * P, "i16")
            self._segment_tiles(s0 + h0 * P, s0 + (h0 + h) * P, front.seg, T, n_max, site, tiles, out=x_in,
                                after=lambda c=c, x_in=x_in: chunk_front(c, x_in))

    def _conv_state(self, op: mq.QConv1dOp, layer: int, C: int) -> str:
        """The conv's DDR state tensor `layers.{layer}.conv` [kw-1, C] i16."""
        kw = _shape(op.weight)[2]
        fx = -self._input_exp(op.x, op.name)
        return self.tensor(f"layers.{layer}.conv", "state", (kw - 1, C), "i16", exp=-fx)

    def _conv_loads(self, op: mq.QConv1dOp, layer: int, state: str, c0: int, c1: int) -> tuple[str, str, str]:
        """Load the conv's state, taps and bias of channels [c0, c1) (all channels: whole blocks)."""
        C, kw = _shape(op.weight)[0], _shape(op.weight)[2]
        whole = (c0, c1) == (0, C)
        tag, rows = ("", {}) if whole else (f"[{c0}:{c1}]", {"rows": [c0, c1]})
        sbuf = self.buffer(f"{self.name}.l{layer}.conv_state", (kw - 1) * (c1 - c0) * 2)
        self.emit("ld", self._state_dma(kw - 1, c0, c1, C), {"buf": "b:" + sbuf, "ddr": "t:" + state},
                  f"layer {layer} conv state{tag}")
        w = self.load_const(self.const(f"layers.{layer}.conv.w{tag}", "conv_w", (op.weight,), kw * (c1 - c0) * 2, **rows),
                            f"{self.name}.l{layer}.conv_w", f"layer {layer} conv weights{tag}")
        bias = self.load_const(self.const(f"layers.{layer}.conv.b{tag}", "array", (op.bias,), (c1 - c0) * 4,
                                          dtype="i32", **rows),
                               f"{self.name}.l{layer}.conv_b", f"layer {layer} conv bias{tag}")
        return sbuf, w, bias

    @staticmethod
    def _state_dma(rows: int, c0: int, c1: int, C: int) -> dict:
        """The DMA fields moving channels [c0, c1) of a [rows, C] i16 DDR state to a [rows, c1 - c0] buffer."""
        return dict(buf=0, ddr=2 * c0, rows=rows, row_bytes=2 * (c1 - c0), ddr_stride=2 * C, buf_stride=2 * (c1 - c0),
                    sem=0)

    def _emit_conv(self, op: mq.QConv1dOp, layer: int, state: str, loads: tuple[str, str, str], x: View, dst: View,
                   c0: int, c1: int) -> None:
        """The conv of channels [c0, c1) (with its state update), then its state stored back."""
        sbuf, w, bias = loads
        kw, C = _shape(op.weight)[2], _shape(op.weight)[0]
        tag = "" if (c0, c1) == (0, C) else f"[{c0}:{c1}]"
        self.emit("conv", dict(dst=dst.offset, src=x.offset, state=0, wgt=0, bias=0, t=x.rows, c=c1 - c0, kw=kw,
                               src_ld=x.ld, dst_ld=dst.ld, shift=op.shift.value.data, out_type=dst.dtype, upd=1),
                  {"dst": "b:" + dst.block, "src": "b:" + x.block, "state": "b:" + sbuf, "wgt": "b:" + w,
                   "bias": "b:" + bias}, f"{op.name} layer {layer}{tag}")
        self.emit("st", self._state_dma(kw - 1, c0, c1, C), {"buf": "b:" + sbuf, "ddr": "t:" + state},
                  f"layer {layer} conv state{tag}")

    def _QConv1dOp(self, op: mq.QConv1dOp) -> None:
        x = self.view_of(op.x, op.name)
        T, C = _as2d(op.x)
        layer = _layer_of(weight_name(op.weight))
        state = self._conv_state(op, layer, C)
        loads = self._conv_loads(op, layer, state, 0, C)
        dst = self.homes.get(op.result) or self.new_view(f"{self.name}.l{layer}.conv_out", T, C,
                                                          dtype_of(op.result.type))
        self._emit_conv(op, layer, state, loads, x, dst, 0, C)
        self.views[op.result] = dst

    def _input_exp(self, value: SSAValue, where: str) -> int:
        owner = value.owner
        if not isinstance(owner, mq.VecOp) or dtype_of(value.type) == "f32":
            raise LoweringError(f"{where}: the integer input must come from a mamba_quant.vec (run fuse-elementwise)")
        return -_pow2_exp(owner.out_scale.value.data)

    def _QSSMScanOp(self, op: mq.QSSMScanOp) -> None:
        H, P, N = _shape(op.new_state)
        G = _as2d(op.B)[1] // N
        layer = _layer_of(weight_name(op.params))
        xbc = self.homes[op.x]
        chunks = self._scan_chunks(H, P, N, G)
        scanner = _Scanner(self, op, layer, chunks)
        scanner.load(0)
        for c, (h0, h) in enumerate(chunks):
            g0 = h0 // (H // G)
            scanner.scan(c, xbc.at(0, h0 * P), b_off=H * P + g0 * N - h0 * P, c_off=H * P + G * N + g0 * N - h0 * P)
        scanner.finish()

    def _ReturnOp(self, op: func.ReturnOp) -> None:
        logits = self.view_of(op.arguments[0], "func.return")
        rows, V = _as2d(op.arguments[0])
        if rows != 1 or logits.dtype != "f32":
            raise LoweringError(f"the program must return the f32 logits of one position, got {rows} x {V} {logits.dtype}")
        self.tensor("logits", "output", (1, V), "f32")
        self.emit("st", dict(ddr=0, buf=logits.offset, rows=1, row_bytes=4 * V, ddr_stride=4 * V, buf_stride=4 * V, sem=0),
                  {"buf": "b:" + logits.block, "ddr": "t:logits"}, "logits")
        tok = self.buffer(f"{self.name}.next_token", 4)
        self.emit("vec.argmax", dict(dst=0, a=logits.offset, rows=1, cols=V), {"dst": "b:" + tok, "a": "b:" + logits.block},
                  "next token")
        self.tensor("next_token", "output", (1,), "i32")
        self.emit("st", dict(ddr=0, buf=0, rows=1, row_bytes=4, ddr_stride=4, buf_stride=4, sem=0),
                  {"buf": "b:" + tok, "ddr": "t:next_token"}, "next token")


class _Scanner:
    """Emits one scan's SSM ops chunk by chunk: each chunk's state loaded one chunk ahead (a ring of
    STATE_RING), scanned, stored back to the DDR state tensor `layers.{layer}.ssm`."""

    def __init__(self, low: _Lowering, op: mq.QSSMScanOp, layer: int, chunks: list[tuple[int, int]]):
        self.low, self.op, self.layer, self.chunks = low, op, layer, chunks
        T = _as2d(op.x)[0]
        H, self.P, self.N = _shape(op.new_state)
        self.hpg = H // (_as2d(op.B)[1] // self.N)
        fx, fb = (-low._input_exp(v, op.name) for v in (op.x, op.B))
        fh = op.dt_frac.value.data + fx + fb - op.dbx_shift.value.data
        self.state = low.tensor(f"layers.{layer}.ssm", "state", (H, self.P, self.N), "i32", exp=-fh)
        self.params = low.load_const(
            low.const(f"layers.{layer}.ssm.params", "array", (op.params,), H * 16, dtype="i32"),
            f"{low.name}.l{layer}.ssm_params", f"layer {layer} ssm params")
        self.y = low.homes.get(op.y) or low.new_view(f"{low.name}.l{layer}.y", T, H * self.P, "i32")
        self.buffers: list[str] = []

    def _state_dma(self, c: int, op: str) -> None:
        h0, h = self.chunks[c]
        head_bytes = self.P * self.N * 4
        nbytes = h * head_bytes
        if op == "ld":
            self.buffers.append(self.low.ring("ssm_state", STATE_RING, nbytes))
        self.low.emit(op, dict(buf=0, ddr=h0 * head_bytes, rows=1, row_bytes=nbytes, ddr_stride=nbytes,
                               buf_stride=nbytes, sem=0),
                      {"buf": "b:" + self.buffers[c], "ddr": "t:" + self.state},
                      f"layer {self.layer} ssm state heads {h0}+{h}")

    def load(self, c: int) -> None:
        """Load chunk c's state (once; nothing past the last chunk)."""
        if len(self.buffers) == c < len(self.chunks):
            self._state_dma(c, "ld")

    def scan(self, c: int, xbc: View, b_off: int, c_off: int) -> None:
        """The SSM op of chunk c reading x at `xbc` (B and C at those element offsets in its rows)."""
        op, (h0, h) = self.op, self.chunks[c]
        self.load(c)
        if c > 0:  # the previous chunk's state goes back now, not right after its op (waiting for it would hold
            self._state_dma(c - 1, "st")  # plan-memory's bounded reordering window), before its slot is reused
        self.load(c + 1)
        dt, y = self.low.view_of(op.dt_raw, op.name).at(0, h0), self.y.at(0, h0 * self.P)
        self.low.emit("ssm", dict(
            y=y.offset, xbc=xbc.offset, dt=dt.offset, params=h0 * 16, state=0, t=y.rows, h=h, p=self.P, n=self.N,
            hpg=min(self.hpg, h), xbc_ld=xbc.ld, b_off=b_off, c_off=c_off, dt_ld=dt.ld, y_ld=y.ld,
            dt_frac=op.dt_frac.value.data, a_frac=op.a_frac.value.data, dbx_shift=op.dbx_shift.value.data,
            y_shift=op.y_shift.value.data, d_shift=op.d_shift.value.data),
            {"y": "b:" + y.block, "xbc": "b:" + xbc.block, "dt": "b:" + dt.block, "params": "b:" + self.params,
             "state": "b:" + self.buffers[c]}, f"{op.name} layer {self.layer} heads {h0}+{h}")

    def finish(self) -> None:
        self._state_dma(len(self.chunks) - 1, "st")
        self.low.views[self.op.y] = self.y


def _row_blocks(rows: int) -> list[tuple[int, int]]:
    """Row ranges a norm and the first weight tile after it are split into (ROW_BLOCKS, or one when short)."""
    if rows < ROW_BLOCKS * MIN_BLOCK_ROWS:
        return [(0, rows)]
    step = -(-rows // ROW_BLOCKS)
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


def on_chip_estimate(low: "_Lowering") -> int:
    """Bytes the program needs on chip at its busiest point in program order: the rings (live throughout)
    plus the activations live at once (plan-memory's reordering may move that peak a little)."""
    ring = sum(n for name, n in low.buffers.items() if "_ring" in name)
    last: dict[str, int] = {}
    first: dict[str, int] = {}
    for index, op in enumerate(low.ops):
        mem = op.attributes.get(MEM_ATTR)
        for ref in (mem.data.values() if isinstance(mem, DictionaryAttr) else ()):
            kind, _, block = ref.data.partition(":")
            if kind == "b" and "_ring" not in block:
                first.setdefault(block, index)
                last[block] = index
    delta = [0] * (len(low.ops) + 1)
    for block, start in first.items():
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
    lowered = [low if low.opt.tile_bytes == budget else
               _fit(low.fn, target, dataclasses.replace(low.opt, tile_bytes=budget), False) for low in lowered]
    return [_finish(low) for low in lowered]


def _fit(fn: func.FuncOp, target, options: LoweringOptions, auto_tile: bool) -> _Lowering:
    low = _Lowering(fn, target, options)
    low.run()
    while auto_tile and options.tile_bytes > MIN_TILE_BYTES and \
            on_chip_estimate(low) * AUTO_TILE_MARGIN > target.buffer_bytes:
        options = dataclasses.replace(options, tile_bytes=options.tile_bytes // 2)
        low = _Lowering(fn, target, options)
        low.run()
    return low


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
