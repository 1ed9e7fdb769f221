"""The mixer's conv and scan on the CONV and SSM units, and the fused mixer front.

Place in the flow: part of lower-to-accel (compiler/backend/lowering.py,
whose `_Lowering` takes these methods from `MixerLowering`).
- Op by op: `qconv1d` -> its state, taps and bias loaded, one `conv`
  (upd = 1), the state stored back; `qssm_scan` -> per chunk of heads (state
  bytes within the tile budget, at B/C group boundaries) the state chunk
  loaded one chunk ahead (a ring of STATE_RING), `ssm`, stored back.  x, B
  and C are written by their vecs into one [T, d_inner + 2 G N] buffer over
  the conv output, as the SSM unit reads them.  With the compact lowering a
  one-head chunk whose state exceeds the budget is scanned in parts of its
  head dimension (Scanner).
- Fused (`Front`, the default): in_proj's xBC and dt tiles, the conv and the
  scan as one unit, so the scan runs beside in_proj instead of after it.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.ir import SSAValue

from fastmamba.compiler.backend.lower_base import (LoweringError, View, as2d, contiguous_dma, dtype_of, layer_of,
                                                   pow2_exp,
                                         shape_of)
from fastmamba.compiler.dialects import mamba
from fastmamba.compiler.dialects.accel import buf_ref, tensor_ref
from fastmamba.compiler.dialects import mamba_quant as mq
from fastmamba.compiler.quant.sites import weight_name

__all__ = ["MixerLowering", "Front", "STATE_RING"]

STATE_RING = 2  # SSM state chunks: double-buffered


@dataclass(frozen=True)
class Front:
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


class MixerLowering:
    """The conv, scan and fused-front methods of the lowering (`_Lowering` in lowering.py provides emit,
    buffers, constants, views and the linear tiles these use)."""

    def _plan_front(self, op: mq.QSSMScanOp) -> bool:
        """Plan the mixer front of `op`'s layer as one unit (see Front) when the IR has its shape: the
        scan's x, B, C are column slices of one conv's output, each through one vec; the conv reads one
        slice of a linear's result through one converting vec, and the scan's dt is another slice of that
        result through one vec.  False (nothing planned) otherwise."""
        T, xw = as2d(op.x)
        bw = as2d(op.B)[1]
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
        H, P, N = shape_of(op.new_state)
        self.fronts[seg] = Front(seg, dt_seg, conv.x.owner, conv, op, self._scan_chunks(H, P, N, bw // N))
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
        T, xw = as2d(op.x)
        bw = as2d(op.B)[1]
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
            self.homes[value] = view.at(0, col, T, as2d(value)[1])

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
        if source is None or as2d(source)[1] != xw + 2 * bw or len(list(source.uses)) != 3:
            return None
        return source

    def _front_tiles(self, front: Front, s0: int, dt: tuple, T: int, n_max: int, site: str,
                     tiles: list) -> None:
        """A mixer front's tiles (B|C, dt, then x chunk by chunk, see Front) with its conv, SiLU and SSM
        ops emitted after the tiles they need; the conv's weights and state are loaded now."""
        conv, scan = front.conv, front.scan
        xw, GN = as2d(scan.x)[1], as2d(scan.B)[1]
        H, P, N = shape_of(scan.new_state)
        G, C = GN // N, xw + 2 * GN
        hpg = H // G
        layer = layer_of(weight_name(conv.weight))
        conv_state = self._conv_state(conv, layer, C)
        ranges = [(xw, C)] + [(h0 * P, (h0 + h) * P) for h0, h in front.chunks]
        # every range's taps, bias and state loaded now; compact: B|C's and the first chunk's now, each next
        # chunk's when the chunk before it is converted (they are live one chunk, not the whole front)
        loads = {r: self._conv_loads(conv, layer, conv_state, *r)
                 for r in (ranges[:2] if self.opt.compact else ranges)}
        bc_in = self.new_view(f"{self.name}.l{layer}.bc_in", T, 2 * GN, "i16")
        bc = self.new_view(f"{self.name}.l{layer}.bc_conv", T, 2 * GN, "i16")
        scanner = Scanner(self, scan, layer, front.chunks)
        vec_of = {value: value.owner for value in (scan.x, scan.B, scan.C)}
        ready: list[tuple[View, int, int]] = []  # each chunk's x|B|C buffer and its B and C offsets

        def conv_bc() -> None:
            self._emit_conv(conv, layer, conv_state, loads[(xw, C)], bc_in, bc, xw, C)
            scanner.load(0)

        def chunk_front(c: int, x_in: View) -> None:
            h0, h = front.chunks[c]
            if c + 2 < len(ranges) and ranges[c + 2] not in loads:
                loads[ranges[c + 2]] = self._conv_loads(conv, layer, conv_state, *ranges[c + 2])
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
        kw = shape_of(op.weight)[2]
        fx = -self._input_exp(op.x, op.name)
        return self.tensor(f"layers.{layer}.conv", "state", (kw - 1, C), "i16", exp=-fx)

    def _conv_loads(self, op: mq.QConv1dOp, layer: int, state: str, c0: int, c1: int) -> tuple[str, str, str]:
        """Load the conv's state, taps and bias of channels [c0, c1) (all channels: whole blocks)."""
        C, kw = shape_of(op.weight)[0], shape_of(op.weight)[2]
        whole = (c0, c1) == (0, C)
        tag, rows = ("", {}) if whole else (f"[{c0}:{c1}]", {"rows": [c0, c1]})
        sbuf = self.buffer(f"{self.name}.l{layer}.conv_state", (kw - 1) * (c1 - c0) * 2)
        self.emit("ld", self._state_dma(kw - 1, c0, c1, C), {"buf": buf_ref(sbuf), "ddr": tensor_ref(state)},
                  f"layer {layer} conv state{tag}")
        w = self.load_const(self.const(f"layers.{layer}.conv.w{tag}", "conv_w", (op.weight,), kw * (c1 - c0) * 2,
                                       **rows),
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
        kw, C = shape_of(op.weight)[2], shape_of(op.weight)[0]
        tag = "" if (c0, c1) == (0, C) else f"[{c0}:{c1}]"
        self.emit("conv", dict(dst=dst.offset, src=x.offset, state=0, wgt=0, bias=0, t=x.rows, c=c1 - c0, kw=kw,
                               src_ld=x.ld, dst_ld=dst.ld, shift=op.shift.value.data, out_type=dst.dtype, upd=1),
                  {"dst": buf_ref(dst.block), "src": buf_ref(x.block), "state": buf_ref(sbuf), "wgt": buf_ref(w),
                   "bias": buf_ref(bias)}, f"{op.name} layer {layer}{tag}")
        self.emit("st", self._state_dma(kw - 1, c0, c1, C), {"buf": buf_ref(sbuf), "ddr": tensor_ref(state)},
                  f"layer {layer} conv state{tag}")

    def _QConv1dOp(self, op: mq.QConv1dOp) -> None:
        x = self.view_of(op.x, op.name)
        T, C = as2d(op.x)
        layer = layer_of(weight_name(op.weight))
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
        return -pow2_exp(owner.out_scale.value.data)

    def _QSSMScanOp(self, op: mq.QSSMScanOp) -> None:
        H, P, N = shape_of(op.new_state)
        G = as2d(op.B)[1] // N
        layer = layer_of(weight_name(op.params))
        xbc = self.homes[op.x]
        chunks = self._scan_chunks(H, P, N, G)
        scanner = Scanner(self, op, layer, chunks)
        for c, (h0, _) in enumerate(chunks):
            g0 = h0 // (H // G)
            scanner.scan(c, xbc.at(0, h0 * P), b_off=H * P + g0 * N - h0 * P, c_off=H * P + G * N + g0 * N - h0 * P)
        scanner.finish()


class Scanner:
    """Emits one scan's SSM ops chunk by chunk: each chunk's state loaded one chunk ahead (a ring of
    STATE_RING), scanned, stored back to the DDR state tensor `layers.{layer}.ssm`.  With the compact
    lowering, a one-head chunk whose state exceeds the streamed-block budget is scanned in parts of its
    head dimension (SSM lanes of one head are independent: each part's op reads its x columns, writes its
    y columns and streams its [p, n] rows of the state, a contiguous range of it)."""

    def __init__(self, low: MixerLowering, op: mq.QSSMScanOp, layer: int, chunks: list[tuple[int, int]]):
        self.low, self.op, self.layer, self.chunks = low, op, layer, chunks
        T = as2d(op.x)[0]
        H, self.P, self.N = shape_of(op.new_state)
        self.hpg = H // (as2d(op.B)[1] // self.N)
        fx, fb = (-low._input_exp(v, op.name) for v in (op.x, op.B))
        fh = op.dt_frac.value.data + fx + fb - op.dbx_shift.value.data
        self.state = low.tensor(f"layers.{layer}.ssm", "state", (H, self.P, self.N), "i32", exp=-fh)
        self.params = low.load_const(
            low.const(f"layers.{layer}.ssm.params", "array", (op.params,), H * 16, dtype="i32"),
            f"{low.name}.l{layer}.ssm_params", f"layer {layer} ssm params")
        self.y = low.homes.get(op.y) or low.new_view(f"{low.name}.l{layer}.y", T, H * self.P, "i32")
        row_bytes = self.N * 4
        pp = self.P
        if low.opt.compact and all(h == 1 for _, h in chunks):
            pp = max(d for d in range(1, self.P + 1) if self.P % d == 0 and (d * row_bytes <= low.opt.tile_bytes
                                                                             or d == 1))
        # the units streamed through the ring: (chunk, first head dimension row, rows); rows = P: whole heads
        self.units = [(c, p0, pp) for c in range(len(chunks)) for p0 in range(0, self.P, pp)]
        self.first_unit = {c: next(k for k, u in enumerate(self.units) if u[0] == c) for c in range(len(chunks))}
        self.buffers: list[str] = []

    def _state_dma(self, u: int, op: str) -> None:
        c, p0, rows = self.units[u]
        h0, h = self.chunks[c]
        head_bytes = self.P * self.N * 4
        nbytes = h * rows * self.N * 4
        if op == "ld":
            self.buffers.append(self.low.ring("ssm_state", STATE_RING, nbytes))
        part = f" rows {p0}:{p0 + rows}" if rows < self.P else ""
        self.low.emit(op, contiguous_dma(nbytes, ddr=h0 * head_bytes + p0 * self.N * 4),
                      {"buf": buf_ref(self.buffers[u]), "ddr": tensor_ref(self.state)},
                      f"layer {self.layer} ssm state heads {h0}+{h}{part}")

    def _load_unit(self, u: int) -> None:
        if len(self.buffers) == u < len(self.units):
            self._state_dma(u, "ld")

    def load(self, c: int) -> None:
        """Load chunk c's (first) state (once; nothing past the last chunk)."""
        if c < len(self.chunks):
            self._load_unit(self.first_unit[c])

    def scan(self, c: int, xbc: View, b_off: int, c_off: int) -> None:
        """The SSM op(s) of chunk c reading x at `xbc` (B and C at those element offsets in its rows)."""
        op, (h0, h) = self.op, self.chunks[c]
        for u in range(self.first_unit[c], len(self.units)):
            if self.units[u][0] != c:
                break
            _, p0, rows = self.units[u]
            self._load_unit(u)
            if u > 0:  # the previous unit's state goes back now, not right after its op (waiting for it would
                self._state_dma(u - 1, "st")  # hold plan-memory's bounded reordering window), before its slot is reused
            self._load_unit(u + 1)
            dt, y, x = self.low.view_of(op.dt_raw, op.name).at(0, h0), self.y.at(0, h0 * self.P + p0), xbc.at(0, p0)
            part = f" rows {p0}:{p0 + rows}" if rows < self.P else ""
            self.low.emit("ssm", dict(
                y=y.offset, xbc=x.offset, dt=dt.offset, params=h0 * 16, state=0, t=y.rows, h=h, p=rows, n=self.N,
                hpg=min(self.hpg, h), xbc_ld=x.ld, b_off=b_off - p0, c_off=c_off - p0, dt_ld=dt.ld, y_ld=y.ld,
                dt_frac=op.dt_frac.value.data, a_frac=op.a_frac.value.data, dbx_shift=op.dbx_shift.value.data,
                y_shift=op.y_shift.value.data, d_shift=op.d_shift.value.data),
                {"y": buf_ref(y.block), "xbc": buf_ref(x.block), "dt": buf_ref(dt.block),
                 "params": buf_ref(self.params), "state": buf_ref(self.buffers[u])},
                f"{op.name} layer {self.layer} heads {h0}+{h}{part}")

    def finish(self) -> None:
        self._state_dma(len(self.units) - 1, "st")
        self.low.views[self.op.y] = self.y
