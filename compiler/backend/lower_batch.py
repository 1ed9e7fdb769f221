# mypy: disable-error-code="attr-defined"
"""The batched decode step's conv and scan: B sequences advanced by one token each, each from its own state.

Place in the flow: part of lower-to-accel (compiler/backend/lowering.py's
`_Lowering` takes these methods from `BatchLowering`, which extends
lower_mixer's `MixerLowering`).  `fastmamba compile --batch B` (B > 1) adds a
function @decode_batch (BATCH_PROGRAM): the prefill graph at length B with
every position's logits, whose row b is sequence b's token.  Everything
row-wise lowers as in any prefill of B tokens (the linears: one LIN of m = B
rows per weight tile, so the weights are read once for all B); this module
lowers the two ops that carry state along the rows, per slot instead:

- `qconv1d`: taps and bias loaded once; per slot b its state (row b of the
  DDR state `layers.{i}.conv` i16 [B, K-1, C]) loaded, one `conv` of t = 1 on
  row b (upd = 1), stored back;
- `qssm_scan`: per chunk of heads (lower_mixer's chunks) and per slot b, the
  chunk's state (of `layers.{i}.ssm` i32 [B, H, P, N], slot b) streamed
  through the state ring one unit ahead, one `ssm` of t = 1 on row b, stored
  back.

The program's interface (docs/ARCHITECTURE.md, "Batched decode"): input
`tokens` i32 [B], outputs `logits` f32 [B, vocab] and `next_token` i32 [B],
states as above, slot b = index b of each state's leading axis.  The runner
copies a sequence's states into its slot (and out of it); the prefill
programs are unchanged and fill one sequence's states at a time.
"""

from __future__ import annotations

from xdsl.dialects import func

from fastmamba.compiler.backend.lower_base import as2d, contiguous_dma, layer_of, shape_of
from fastmamba.compiler.backend.lower_mixer import STATE_RING, MixerLowering
from fastmamba.compiler.dialects import mamba_quant as mq
from fastmamba.compiler.dialects.accel import buf_ref, tensor_ref
from fastmamba.compiler.quant.sites import weight_name

__all__ = ["BATCH_PROGRAM", "BatchLowering", "batch_of"]

BATCH_PROGRAM = "decode_batch"  # the batched decode step's function and program


def batch_of(fn: func.FuncOp) -> int:
    """The slots of a batched decode function (its tokens' length), 0 for any other function."""
    if fn.sym_name.data != BATCH_PROGRAM:
        return 0
    return int(fn.function_type.inputs.data[0].get_shape()[0])


class BatchLowering(MixerLowering):
    """The per-slot conv and scan of @decode_batch; any other function lowers as MixerLowering does."""

    @property
    def slots(self) -> int:
        """0, or the batch B of the function being lowered."""
        return batch_of(self.fn)

    def _plan_front(self, op: mq.QSSMScanOp) -> bool:
        # the fused front scans all rows of one state; the batched step scans each row from its own
        return False if self.slots else super()._plan_front(op)

    def _QConv1dOp(self, op: mq.QConv1dOp) -> None:
        B = self.slots
        if not B:
            return super()._QConv1dOp(op)
        x = self.view_of(op.x, op.name)
        T, C = as2d(op.x)
        kw = shape_of(op.weight)[2]
        layer = layer_of(weight_name(op.weight))
        fx = -self._input_exp(op.x, op.name)
        state = self.tensor(f"layers.{layer}.conv", "state", (B, kw - 1, C), "i16", exp=-fx)
        slot_bytes = (kw - 1) * C * 2
        w = self.load_const(self.const(f"layers.{layer}.conv.w", "conv_w", (op.weight,), kw * C * 2),
                            f"{self.name}.l{layer}.conv_w", f"layer {layer} conv weights")
        bias = self.load_const(self.const(f"layers.{layer}.conv.b", "array", (op.bias,), C * 4, dtype="i32"),
                               f"{self.name}.l{layer}.conv_b", f"layer {layer} conv bias")
        dst = self.homes.get(op.result) or self.new_view(f"{self.name}.l{layer}.conv_out", T, C, "i16")
        for b in range(B):
            sbuf = self.ring("conv_state", STATE_RING, slot_bytes)
            self.emit("ld", contiguous_dma(slot_bytes, ddr=b * slot_bytes), {"buf": buf_ref(sbuf),
                                                                              "ddr": tensor_ref(state)},
                      f"layer {layer} conv state slot {b}")
            src, out = x.at(b, 0, 1, C), dst.at(b, 0, 1, C)
            self.emit("conv", dict(dst=out.offset, src=src.offset, state=0, wgt=0, bias=0, t=1, c=C, kw=kw,
                                   src_ld=src.ld, dst_ld=out.ld, shift=op.shift.value.data, out_type=out.dtype, upd=1),
                      {"dst": buf_ref(out.block), "src": buf_ref(src.block), "state": buf_ref(sbuf),
                       "wgt": buf_ref(w), "bias": buf_ref(bias)}, f"{op.name} layer {layer} slot {b}")
            self.emit("st", contiguous_dma(slot_bytes, ddr=b * slot_bytes), {"buf": buf_ref(sbuf),
                                                                              "ddr": tensor_ref(state)},
                      f"layer {layer} conv state slot {b}")
        self.views[op.result] = dst

    def _QSSMScanOp(self, op: mq.QSSMScanOp) -> None:
        B = self.slots
        if not B:
            return super()._QSSMScanOp(op)
        H, P, N = shape_of(op.new_state)
        G = as2d(op.B)[1] // N
        T = as2d(op.x)[0]
        hpg = H // G
        layer = layer_of(weight_name(op.params))
        fx, fb = (-self._input_exp(v, op.name) for v in (op.x, op.B))
        fh = op.dt_frac.value.data + fx + fb - op.dbx_shift.value.data
        state = self.tensor(f"layers.{layer}.ssm", "state", (B, H, P, N), "i32", exp=-fh)
        params = self.load_const(self.const(f"layers.{layer}.ssm.params", "array", (op.params,), H * 16, dtype="i32"),
                                 f"{self.name}.l{layer}.ssm_params", f"layer {layer} ssm params")
        y = self.homes.get(op.y) or self.new_view(f"{self.name}.l{layer}.y", T, H * P, "i32")
        xbc = self.homes[op.x]
        dt_all = self.view_of(op.dt_raw, op.name)
        head_bytes, slot_bytes = P * N * 4, H * P * N * 4
        units = [(h0, h, b) for h0, h in self._scan_chunks(H, P, N, G) for b in range(B)]
        buffers: list[str] = []

        def dma(u: int, kind: str) -> None:
            h0, h, b = units[u]
            if kind == "ld":
                buffers.append(self.ring("ssm_state", STATE_RING, h * head_bytes))
            self.emit(kind, contiguous_dma(h * head_bytes, ddr=b * slot_bytes + h0 * head_bytes),
                      {"buf": buf_ref(buffers[u]), "ddr": tensor_ref(state)},
                      f"layer {layer} ssm state heads {h0}+{h} slot {b}")

        dma(0, "ld")
        for u, (h0, h, b) in enumerate(units):
            if u > 0:
                dma(u - 1, "st")  # before its ring slot is reused (as lower_mixer's Scanner)
            if u + 1 < len(units):
                dma(u + 1, "ld")
            g0 = h0 // hpg
            x, dt, yv = xbc.at(b, h0 * P, 1), dt_all.at(b, h0, 1), y.at(b, h0 * P, 1)
            self.emit("ssm", dict(
                y=yv.offset, xbc=x.offset, dt=dt.offset, params=h0 * 16, state=0, t=1, h=h, p=P, n=N,
                hpg=min(hpg, h), xbc_ld=x.ld, b_off=H * P + g0 * N - h0 * P, c_off=H * P + G * N + g0 * N - h0 * P,
                dt_ld=dt.ld, y_ld=yv.ld, dt_frac=op.dt_frac.value.data, a_frac=op.a_frac.value.data,
                dbx_shift=op.dbx_shift.value.data, y_shift=op.y_shift.value.data, d_shift=op.d_shift.value.data),
                {"y": buf_ref(yv.block), "xbc": buf_ref(x.block), "dt": buf_ref(dt.block), "params": buf_ref(params),
                 "state": buf_ref(buffers[u])}, f"{op.name} layer {layer} heads {h0}+{h} slot {b}")
        dma(len(units) - 1, "st")
        self.views[op.y] = y
