"""VLIW scheduler speed on whole-model programs: how long `compiler.backend.schedule` takes for ~20,000 ops.

Place in the flow: a measurement, not a test.  One synthetic program for the
vc709 target shaped like a Mamba2 prefill (built directly as instructions, no
model, no pass): `--layers` layers of L = `--tokens` tokens, d_model 768,
d_inner 1536, 24 heads of 64, d_state 16; per layer

- an rmsnorm (VEC) of the f32 residual into int8,
- in_proj as 49 weight tiles of 64 rows: each an `ld` into one of two
  alternating weight slots and a `lin` (m = L, k = 768, n = 64) into the
  z or the xBC+dt accumulator,
- a VEC converting xBC+dt to int16; `ld` of the conv state, weights and
  bias, a `conv` (updating its state) and an `st` of the state,
- `ld` of the SSM parameters and state, two `ssm` ops of 12 heads and an
  `st` of the state,
- a gating VEC (y * silu(z)) into int8, out_proj as 12 tiles (`ld` + `lin`,
  k = 1536) and a VEC adding the result into the residual;

then an `st` of the residual.  About 136 ops per layer; LIN tiles of 2,048
and 4,096 cycles.  All layers read the same weights in DDR (reads never
conflict, so the schedule is that of distinct weights) and keep their states
at their own DDR addresses.

Prints the instruction count, the seconds `schedule()` takes (dependence
graph included), the bundles and the modelled cycles; with `--simulate` it
also runs the schedule on the simulator and checks that the simulated cycle
count equals the modelled one (no hazard, no stall the model did not plan).

Run: `.venv/bin/python benchmarks/bench_schedule.py [--layers N] [--tokens L] [--simulate]`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastmamba.compiler.backend.schedule import schedule  # noqa: E402
from fastmamba.isa.instructions import OPS, Instruction  # noqa: E402
from fastmamba.isa.target import load_target  # noqa: E402
from fastmamba.simulator.effects import MachineState  # noqa: E402
from fastmamba.simulator.engine import simulate  # noqa: E402

D_MODEL, D_INNER, HEADS, HEAD_DIM, D_STATE, KW = 768, 1536, 24, 64, 16, 4
CONV_CH = D_INNER + 2 * D_STATE  # x, B, C (one group)
XBCDT = 1600  # columns of the xBC + dt accumulator: CONV_CH + HEADS, padded to whole tiles
TILE = 64  # weight rows per tile
SSM_SPLIT = 2  # ssm ops per layer (heads per op: HEADS / SSM_SPLIT)
ALIGN = 256
BUFFER_BYTES = load_target("vc709").buffer_bytes


def _op(name: str, **fields) -> Instruction:
    """An instruction with the fields its op has (pitch fields default to dense)."""
    spec = OPS[name].field_map
    for pitch, of in (("a_ld", "cols"), ("b_ld", "cols"), ("dst_ld", "cols")):
        if pitch in spec and pitch not in fields:
            fields[pitch] = fields[of]
    return Instruction(name, {k: v for k, v in fields.items() if k in spec})


def ld(buf: int, ddr: int, rows: int, row_bytes: int) -> Instruction:
    return _op("ld", buf=buf, ddr=ddr, rows=rows, row_bytes=row_bytes, ddr_stride=row_bytes, buf_stride=row_bytes,
               sem=0)


def st(ddr: int, buf: int, rows: int, row_bytes: int) -> Instruction:
    return _op("st", ddr=ddr, buf=buf, rows=rows, row_bytes=row_bytes, ddr_stride=row_bytes, buf_stride=row_bytes,
               sem=0)


def lin(dst: int, src: int, wgt: int, m: int, k: int, n: int, dst_ld: int) -> Instruction:
    return _op("lin", dst=dst, src=src, wgt=wgt, scale=0, m=m, k=k, n=n, src_ld=k, dst_ld=dst_ld, src_type="i8",
               hlog2=0, qmul=1, qshift=0, acc=0, out="i32")


def vec(dst: int, a: int, rows: int, cols: int, a_type: str, out_type: str, ops=("none",), b: int = 0,
        b_type: str = "i8", b_mode: str = "none") -> Instruction:
    micro = dict(zip(("op0", "op1", "op2", "op3"), (*ops, "none", "none", "none")))
    return _op("vec", dst=dst, a=a, b=b, rows=rows, cols=cols, a_type=a_type, a_exp=-8, b_type=b_type, b_exp=-8,
               b_mode=b_mode, group=cols, eps=1e-5, out_type=out_type, out_scale=16.0, **micro)


class _Arena:
    """Bump allocation of aligned addresses."""

    def __init__(self, base: int = 0):
        self.top = base

    def take(self, nbytes: int) -> int:
        at = self.top
        self.top += -(-nbytes // ALIGN) * ALIGN
        return at


def layered_program(layers: int, tokens: int) -> tuple[list[Instruction], int]:
    """The synthetic prefill (see the module text) and the DDR bytes it needs."""
    L = tokens
    ddr, buf = _Arena(), _Arena()
    d_resid = ddr.take(L * D_MODEL * 4)
    d_w_in = ddr.take((D_INNER + XBCDT) * D_MODEL)
    d_w_out = ddr.take(D_MODEL * D_INNER)
    d_conv_w, d_conv_b = ddr.take(KW * CONV_CH * 2), ddr.take(CONV_CH * 4)
    d_params = ddr.take(HEADS * 16)
    conv_state_bytes, ssm_state_bytes = (KW - 1) * CONV_CH * 2, HEADS * HEAD_DIM * D_STATE * 4
    d_states = [(ddr.take(conv_state_bytes), ddr.take(ssm_state_bytes)) for _ in range(layers)]

    resid, xn = buf.take(L * D_MODEL * 4), buf.take(L * D_MODEL)
    w_slots = [buf.take(TILE * D_INNER) for _ in range(2)]
    z, xbcdt = buf.take(L * D_INNER * 4), buf.take(L * XBCDT * 4)
    xbc16, conv_out = buf.take(L * XBCDT * 2), buf.take(L * CONV_CH * 2)
    conv_state, conv_w, conv_b = buf.take(conv_state_bytes), buf.take(KW * CONV_CH * 2), buf.take(CONV_CH * 4)
    params, ssm_state = buf.take(HEADS * 16), buf.take(ssm_state_bytes)
    # buffers reused once dead, as a memory planner would: y over xBC+dt (i32), the gated int8
    # activations over its int16 copy, out_proj's result over z
    y, gated, out = xbcdt, xbc16, z
    assert buf.top <= BUFFER_BYTES, f"{tokens} tokens do not fit the buffer"

    prog = [ld(resid, d_resid, L, D_MODEL * 4)]
    tile = 0

    def weight_tile(ddr_addr: int, k: int) -> int:
        nonlocal tile
        slot = w_slots[tile % 2]
        tile += 1
        prog.append(ld(slot, ddr_addr, TILE, k))
        return slot

    hpo = HEADS // SSM_SPLIT
    for d_conv_state, d_ssm_state in d_states:
        prog.append(vec(xn, resid, L, D_MODEL, "f32", "i8", ("rmsnorm",)))
        for j in range((D_INNER + XBCDT) // TILE):  # in_proj: z, then xBC and dt
            slot = weight_tile(d_w_in + j * TILE * D_MODEL, D_MODEL)
            col = j * TILE
            dst, ld_ = (z + col * 4, D_INNER) if col < D_INNER else (xbcdt + (col - D_INNER) * 4, XBCDT)
            prog.append(lin(dst, xn, slot, L, D_MODEL, TILE, ld_))
        prog.append(vec(xbc16, xbcdt, L, XBCDT, "i32", "i16"))
        prog += [ld(conv_state, d_conv_state, 1, conv_state_bytes), ld(conv_w, d_conv_w, 1, KW * CONV_CH * 2),
                 ld(conv_b, d_conv_b, 1, CONV_CH * 4)]
        prog.append(_op("conv", dst=conv_out, src=xbc16, state=conv_state, wgt=conv_w, bias=conv_b, t=L, c=CONV_CH,
                        kw=KW, src_ld=XBCDT, dst_ld=CONV_CH, shift=8, out_type="i16", upd=1))
        prog.append(st(d_conv_state, conv_state, 1, conv_state_bytes))
        prog += [ld(params, d_params, 1, HEADS * 16), ld(ssm_state, d_ssm_state, 1, ssm_state_bytes)]
        for h0 in range(0, HEADS, hpo):
            x0 = h0 * HEAD_DIM
            prog.append(_op("ssm", y=y + x0 * 4, xbc=conv_out + x0 * 2, dt=xbc16 + (CONV_CH + h0) * 2,
                            params=params + h0 * 16, state=ssm_state + x0 * D_STATE * 4, t=L, h=hpo, p=HEAD_DIM,
                            n=D_STATE, hpg=hpo, xbc_ld=CONV_CH, b_off=D_INNER - x0, c_off=D_INNER + D_STATE - x0,
                            dt_ld=XBCDT, y_ld=D_INNER, dt_frac=8, a_frac=10, dbx_shift=10, y_shift=10, d_shift=10))
        prog.append(st(d_ssm_state, ssm_state, 1, ssm_state_bytes))
        prog.append(vec(gated, y, L, D_INNER, "i32", "i8", ("gate",), b=z, b_type="i32", b_mode="full"))
        for j in range(D_MODEL // TILE):  # out_proj
            slot = weight_tile(d_w_out + j * TILE * D_INNER, D_INNER)
            prog.append(lin(out + j * TILE * 4, gated, slot, L, D_INNER, TILE, D_MODEL))
        prog.append(vec(resid, out, L, D_MODEL, "i32", "f32", ("add",), b=resid, b_type="f32", b_mode="full"))
    prog.append(st(d_resid, resid, L, D_MODEL * 4))
    return prog, ddr.top


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=148, help="layers (148: about 20,000 ops)")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--target", default="vc709")
    parser.add_argument("--simulate", action="store_true", help="also simulate and compare the cycle counts")
    args = parser.parse_args(argv)
    target = load_target(args.target)
    prog, ddr_bytes = layered_program(args.layers, args.tokens)
    start = time.perf_counter()
    sched = schedule(prog, target)
    seconds = time.perf_counter() - start
    print(f"instructions {len(prog)}, schedule {seconds:.2f} s, bundles {len(sched.bundles)}, "
          f"cycles {sched.cycles:,}")
    if args.simulate:
        rng = np.random.default_rng(0)
        state = MachineState(ddr=np.zeros(ddr_bytes, np.uint8), buf=np.zeros(target.buffer_bytes, np.uint8))
        state.ddr[:] = rng.integers(-4, 5, ddr_bytes, dtype=np.int8).view(np.uint8)
        start = time.perf_counter()
        stats = simulate(sched.bundles, state, target)
        print(f"simulated {stats.cycles:,} cycles in {time.perf_counter() - start:.1f} s, stalls {dict(stats.stalls)}")
        if stats.cycles != sched.cycles:
            print("MISMATCH: the simulated cycle count differs from the modelled one")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
