"""schedule-vliw: scheduled programs run on the simulator with no hazard, mean what the program order means, and are
fast.

Every scheduled program is checked against the same instructions run strictly
sequentially (compiler.backend.schedule.sequential: each op completes before
the next issues) on the same random DDR image: the final DDR and buffer bytes
must be equal.  The simulator raises on any hazard or deadlock, so a run that
returns is hazard-free.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp

from fastmamba.compiler.backend.depgraph import dependence_graph
from fastmamba.compiler.backend.schedule import ScheduleError, schedule, sequential
from fastmamba.compiler.dialects.accel import TARGET_ATTR, BundleOp, ProgramOp, instruction_of, op_of, target_attr
from fastmamba.isa import costs
from fastmamba.isa.instructions import Instruction
from fastmamba.isa.target import load_target
from fastmamba.passes.schedule_vliw import ScheduleVliwPass
from fastmamba.simulator.effects import MachineState
from fastmamba.simulator.engine import simulate

VC709 = load_target("vc709")


def run(bundles, ddr_size, target=VC709, seed=0):
    rng = np.random.default_rng(seed)
    state = MachineState(ddr=rng.integers(0, 256, ddr_size, dtype=np.uint8),
                         buf=np.zeros(target.buffer_bytes, np.uint8))
    stats = simulate(bundles, state, target)
    return state, stats


def check_equivalent(prog, ddr_size, target=VC709, **kw):
    """Run the scheduled and the sequential program; same memory afterwards; return both stats."""
    sched = schedule(prog, target, **kw)
    fast, fast_stats = run(sched.bundles, ddr_size, target)
    slow, slow_stats = run(sequential(prog, target).bundles, ddr_size, target)
    assert np.array_equal(fast.ddr, slow.ddr)
    assert np.array_equal(fast.buf, slow.buf)
    assert sched.bundles[-1].op_in("CTL").op == "ctl.halt"
    assert sum(len(b.ops) for b in sched.bundles) >= len(prog) + 1
    return sched, fast_stats, slow_stats


def ld(buf, ddr, rows, row_bytes, buf_stride=None, ddr_stride=None):
    return Instruction("ld", dict(buf=buf, ddr=ddr, rows=rows, row_bytes=row_bytes, ddr_stride=ddr_stride or row_bytes,
                                  buf_stride=buf_stride or row_bytes, sem=0))


def st_(ddr, buf, rows, row_bytes):
    return Instruction("st", dict(ddr=ddr, buf=buf, rows=rows, row_bytes=row_bytes, ddr_stride=row_bytes,
                                  buf_stride=row_bytes, sem=0))


def lin(dst, src, wgt, m, k, n, acc=0):
    return Instruction("lin", dict(dst=dst, src=src, wgt=wgt, scale=0, m=m, k=k, n=n, src_ld=k, dst_ld=n, src_type="i8",
                                   hlog2=0, qmul=1, qshift=0, acc=acc, out="i32"))


def vec(dst, a, rows, cols, a_type="i8", out_type="i8", op0="silu", b=0, b_mode="none", b_type="i8", op1="none"):
    return Instruction("vec", dict(dst=dst, a=a, b=b, rows=rows, cols=cols, a_ld=cols, b_ld=cols, dst_ld=cols,
                                   a_type=a_type, a_exp=-4, b_type=b_type, b_exp=-4, b_mode=b_mode, op0=op0, op1=op1,
                                   op2="none", op3="none", group=cols, eps=1e-5, out_type=out_type, out_scale=8.0))


# --- (i) the tiled int8 matmul --------------------------------------------------------------------------------------


def tiled_matmul(m, k, n, tile, nbuf=2):
    """C = A @ W^T: load A, then per tile of `tile` weight rows: load it (nbuf buffers in turn), lin, store.

    DDR: A [m, k] i8 at 0, W [n, k] i8 after it, C tile-major [n/tile, m, tile] i32 after that.
    """
    a_ddr, w_ddr = 0, m * k
    c_ddr = w_ddr + n * k
    a_buf, w_buf = 0, m * k
    c_buf = w_buf + nbuf * tile * k
    prog = [ld(a_buf, a_ddr, m, k)]
    for j in range(n // tile):
        wb = w_buf + (j % nbuf) * tile * k
        out = j * m * tile * 4
        prog += [ld(wb, w_ddr + j * tile * k, tile, k), lin(c_buf + out, a_buf, wb, m, k, tile),
                 st_(c_ddr + out, c_buf + out, m, tile * 4)]
    return prog, c_ddr, c_ddr + m * n * 4


@pytest.mark.parametrize("m,k,n,tile", [(16, 256, 512, 64), (64, 256, 512, 64), (16, 256, 1024, 32)])
def test_tiled_matmul_is_correct_hazard_free_and_near_the_bound(m, k, n, tile):
    prog, c_ddr, size = tiled_matmul(m, k, n, tile)
    sched, fast, slow = check_equivalent(prog, size)
    state, _ = run(sched.bundles, size)
    a = np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8)[:m * k].view(np.int8).reshape(m, k)
    w = state.ddr[m * k:m * k + n * k].view(np.int8).reshape(n, k)
    c = state.ddr[c_ddr:c_ddr + m * n * 4].view("<i4").reshape(n // tile, m, tile).transpose(1, 0, 2).reshape(m, n)
    assert np.array_equal(c, a.astype(np.int64) @ w.astype(np.int64).T)
    dma = sum(costs.occupancy(i, VC709) for i in prog if i.slot in costs.DMA_SLOTS)
    lin_time = sum(costs.occupancy(i, VC709) for i in prog if i.slot == "LIN")
    # The bound: every transfer through the one DDR channel, or every LIN op, back to back, plus the
    # unavoidable ends (the first loads' latency, the last tile's LIN and its store's latency) in 20%.
    assert fast.cycles <= 1.2 * max(dma, lin_time)
    assert slow.cycles >= 1.5 * fast.cycles
    assert fast.stalls["semaphore"] == 0 and fast.stalls["structural"] == 0  # the model is the simulator's timing
    assert sched.cycles == fast.cycles


def test_matmul_cycle_figures():
    """The report's figures: vc709, A [16, 256] @ W [512, 256]^T in tiles of 64 rows, double-buffered."""
    prog, _, size = tiled_matmul(16, 256, 512, 64)
    _, fast, slow = check_equivalent(prog, size)
    assert (slow.cycles, fast.cycles) == (5415, 3241)


def test_loads_overlap_compute():
    prog, _, size = tiled_matmul(64, 256, 512, 64, nbuf=3)
    sched, fast, _ = check_equivalent(prog, size)
    assert fast.busy["LIN"] == sum(costs.occupancy(i, VC709) for i in prog if i.slot == "LIN")
    # some bundle issues a load while an earlier LIN op is still running
    t, running_until, overlapped = 0, 0, False
    for b in sched.bundles:
        if b.op_in("LD") is not None and t < running_until:
            overlapped = True
        if b.op_in("LIN") is not None:
            running_until = t + costs.occupancy(b.op_in("LIN"), VC709)
        t += 1 + b.delay
    assert overlapped


# --- (ii) mixed units with data dependences -------------------------------------------------------------------------


def mixed_program():
    """ld -> lin -> vec (i32 -> i16, silu) -> conv -> ssm -> vec -> st, beside an independent vec chain."""
    t, c = 8, 64
    prog = [
        ld(0x0000, 0x0000, 8, 64),  # lin src [8, 64] i8
        ld(0x0400, 0x0400, 64, 64),  # lin wgt [64, 64] i8
        lin(0x2000, 0x0000, 0x0400, 8, 64, 64),  # dst [8, 64] i32
        vec(0x3000, 0x2000, t, c, a_type="i32", out_type="i16"),  # [8, 64] i16
        ld(0x4000, 0x2000, 1, 6 * c),  # conv state [3, 64] i16
        ld(0x4400, 0x2400, 1, 8 * c),  # conv wgt [4, 64] i16
        ld(0x4800, 0x2800, 1, 4 * c),  # conv bias [64] i32
        Instruction("conv", dict(dst=0x5000, src=0x3000, state=0x4000, wgt=0x4400, bias=0x4800, t=t, c=c, kw=4,
                                 src_ld=c, dst_ld=c, shift=8, out_type="i16", upd=1)),
        ld(0x6000, 0x3000, 1, 2 * t * 2),  # dt [8, 2] i16
        ld(0x6100, 0x3100, 1, 2 * 16),  # params [2, 4] i32
        ld(0x6200, 0x3200, 1, 2 * 16 * 4 * 4),  # state [2*16, 4] i32
        Instruction("ssm", dict(y=0x7000, xbc=0x5000, dt=0x6000, params=0x6100, state=0x6200, t=t, h=2, p=16, n=4,
                                hpg=2, xbc_ld=c, b_off=32, c_off=36, dt_ld=2, y_ld=32, dt_frac=8, a_frac=10,
                                dbx_shift=10, y_shift=10, d_shift=10)),
        vec(0x8000, 0x7000, t, 32, a_type="i32", out_type="f32", op0="silu"),
        st_(0x4000, 0x8000, t, 32 * 4),
        st_(0x4800, 0x6200, 1, 2 * 16 * 4 * 4),  # the SSM's final state
        ld(0x9000, 0x5000, 4, 64),  # an independent chain
        vec(0x9400, 0x9000, 4, 64, op0="silu", b=0x9000, b_mode="full", op1="mul"),
        st_(0x5400, 0x9400, 4, 64),
    ]
    return prog, 0x6000


def test_mixed_units_with_data_dependences():
    prog, size = mixed_program()
    sched, fast, slow = check_equivalent(prog, size)
    assert fast.ops_per_unit["SSM"] == 1 and fast.ops_per_unit["CONV"] == 1
    assert fast.cycles < slow.cycles
    graph = dependence_graph(prog)
    assert graph.has_edge(2, 3) and "RAW" in graph.edges[2, 3]["kinds"]  # lin -> vec
    assert graph.has_edge(11, 14) and "RAW" in graph.edges[11, 14]["kinds"]  # ssm state -> store
    # the independent chain does not wait for the long one
    order = [n for srcs in sched.sources for n in srcs if n is not None]
    assert order.index(15) < order.index(11)


# --- (iii) WAR: a buffer reused after a store, a load over what a LIN still reads ------------------------------------


def test_store_then_overwrite_is_synchronized():
    prog = [
        ld(0x000, 0x000, 4, 256),
        vec(0x400, 0x000, 4, 256),  # result at 0x400
        st_(0x1000, 0x400, 4, 256),  # store it ...
        vec(0x400, 0x000, 4, 256, op0="softplus"),  # ... then overwrite 0x400 (WAR on the store)
        st_(0x2000, 0x400, 4, 256),
        ld(0x000, 0x800, 4, 256),  # reload 0x000, which both vecs read (WAR on compute)
        vec(0x800, 0x000, 4, 256),
        st_(0x3000, 0x800, 4, 256),
    ]
    sched, _, _ = check_equivalent(prog, 0x4000)
    graph = dependence_graph(prog)
    assert graph.edges[2, 3]["kinds"] == {"WAR"}
    # the overwriting vec's bundle, or one before it after the store, waits for the store's semaphore
    store_at = next(b for b, srcs in enumerate(sched.sources) if 2 in srcs)
    over_at = next(b for b, srcs in enumerate(sched.sources) if 3 in srcs)
    sem = sched.bundles[store_at].op_in("ST")["sem"]
    assert sem != 0
    assert any(b.op_in("CTL") is not None and b.op_in("CTL").op == "ctl.wait" and b.op_in("CTL")["sem"] == sem
               for b in sched.bundles[store_at + 1:over_at + 1])


def test_waits_keep_it_correct_when_memory_is_slower_than_planned():
    """Scheduled for vc709, run with DDR 10x slower: still equal; without its waits the simulator objects."""
    from fastmamba.isa.instructions import Bundle
    from fastmamba.simulator.effects import SimulationError

    slow_ddr = dataclasses.replace(VC709, name="slow", ddr_gbytes_per_s=1.5, dma_latency=640)
    prog = [ld(0x000, 0x000, 4, 256), vec(0x400, 0x000, 4, 256), st_(0x1000, 0x400, 4, 256),
            vec(0x400, 0x000, 4, 256, op0="softplus"), st_(0x2000, 0x400, 4, 256)]
    sched = schedule(prog, VC709)
    fast, stats = run(sched.bundles, 0x4000, slow_ddr)
    slow, _ = run(sequential(prog, slow_ddr).bundles, 0x4000, slow_ddr)
    assert np.array_equal(fast.ddr, slow.ddr) and stats.stalls["semaphore"] > 0
    stripped = [Bundle(tuple(o for o in b.ops if o.op != "ctl.wait"), b.delay) for b in sched.bundles]
    run(stripped, 0x4000, VC709)  # on the planned timing the delays alone happen to suffice
    with pytest.raises(SimulationError, match="hazard"):
        run(stripped, 0x4000, slow_ddr)


# --- semaphores, queue depth, lookahead -----------------------------------------------------------------------------


def test_few_semaphores_and_a_shallow_queue():
    target = dataclasses.replace(VC709, name="tiny", semaphores=1, dma_queue_depth=1)
    prog = [ld(i * 0x100, i * 0x100, 1, 0x100) for i in range(6)]
    prog += [vec(0x1000 + i * 0x100, i * 0x100, 1, 0x100) for i in range(6)]
    prog += [st_(0x2000 + i * 0x100, 0x1000 + i * 0x100, 1, 0x100) for i in range(6)]
    sched, _, _ = check_equivalent(prog, 0x3000, target)
    for b in sched.bundles:
        assert sum(o.slot in costs.DMA_SLOTS for o in b.ops) <= 1
        for o in b.ops:
            assert o["sem"] <= 1 if "sem" in o.args else True


@pytest.mark.parametrize("lookahead", [1, 2, 5])
def test_lookahead_limits_reordering(lookahead):
    prog, c_ddr, size = tiled_matmul(16, 256, 256, 64)
    sched, _, _ = check_equivalent(prog, size, lookahead=lookahead)
    issued: list[int] = []
    for srcs in sched.sources:
        for n in srcs:
            if n is not None:
                assert n < min(set(range(len(prog))) - set(issued)) + lookahead
        issued += [n for n in srcs if n is not None]


def test_control_ops_in_the_input_are_refused():
    with pytest.raises(ScheduleError, match="ctl"):
        schedule([Instruction("ctl.halt", {})], VC709)


# --- (iv) random straight-line programs -----------------------------------------------------------------------------

SLOT_BYTES = 256
BUF_SLOTS = 5
DDR_SLOTS = 4


@st.composite
def random_program(draw):
    ops = []
    for _ in range(draw(st.integers(1, 14))):
        kind = draw(st.sampled_from(("ld", "st", "vec", "vec2", "lin")))
        b1, b2 = draw(st.integers(0, BUF_SLOTS - 1)), draw(st.integers(0, BUF_SLOTS - 1))
        d = draw(st.integers(0, DDR_SLOTS - 1)) * SLOT_BYTES
        rows = draw(st.sampled_from((1, 2, 4)))
        if kind == "ld":
            ops.append(ld(b1 * SLOT_BYTES, d, rows, SLOT_BYTES // rows))
        elif kind == "st":
            ops.append(st_(d, b1 * SLOT_BYTES, rows, SLOT_BYTES // rows))
        elif kind == "vec":
            ops.append(vec(b2 * SLOT_BYTES, b1 * SLOT_BYTES, rows, SLOT_BYTES // rows,
                           op0=draw(st.sampled_from(("silu", "softplus", "none")))))
        elif kind == "vec2" and b1 != b2:
            b3 = draw(st.integers(0, BUF_SLOTS - 1))
            ops.append(vec(b3 * SLOT_BYTES, b1 * SLOT_BYTES, 4, 64, b=b2 * SLOT_BYTES, b_mode="full", op0="add"))
        elif kind == "lin" and len({b1, b2}) == 2:
            dst = next(s for s in range(BUF_SLOTS) if s not in (b1, b2))
            ops.append(lin(dst * SLOT_BYTES, b1 * SLOT_BYTES, b2 * SLOT_BYTES, 4, 64, draw(st.sampled_from((1, 4))),
                           acc=draw(st.integers(0, 1))))
    return ops


@settings(max_examples=60, deadline=None)
@given(prog=random_program(), semaphores=st.sampled_from((1, 2, 32)), depth=st.sampled_from((1, 2, 8)))
def test_random_programs_schedule_correctly(prog, semaphores, depth):
    target = dataclasses.replace(VC709, name="t", semaphores=semaphores, dma_queue_depth=depth,
                                 buffer_bytes=BUF_SLOTS * SLOT_BYTES)
    sched, fast, slow = check_equivalent(prog, DDR_SLOTS * SLOT_BYTES, target)
    assert fast.cycles <= slow.cycles


# --- the pass on accel IR -------------------------------------------------------------------------------------------


def test_pass_schedules_accel_programs_and_keeps_debug_text():
    prog, c_ddr, size = tiled_matmul(16, 256, 256, 64)
    ops = [op_of(i, f"op{n}") for n, i in enumerate(prog)] + [op_of(Instruction("ctl.halt", {}))]
    module = ModuleOp([ProgramOp("main", size, (), ops)])
    module.attributes[TARGET_ATTR] = target_attr("vc709")
    ScheduleVliwPass(lookahead=0).apply(Context(), module)
    module.verify()
    (program,) = list(module.ops)
    assert program.is_scheduled
    bundles = list(program.body.block.ops)
    assert all(isinstance(b, BundleOp) for b in bundles)
    texts = sorted(o.debug_text for b in bundles for o in b.instruction_ops if o.debug_text)
    assert texts == sorted(f"op{n}" for n in range(len(prog)))
    from fastmamba.isa.instructions import Bundle

    ir_bundles = [Bundle(tuple(instruction_of(o) for o in b.instruction_ops), b.delay_cycles) for b in bundles]
    assert ir_bundles == list(schedule(prog, VC709).bundles)
    ScheduleVliwPass().apply(Context(), module)  # already scheduled: unchanged
    assert len(list(program.body.block.ops)) == len(bundles)


def test_opt_command_schedules_an_accel_file(tmp_path, capsys):
    from fastmamba.compiler.cli import main as cli_main
    from fastmamba.compiler.pipeline import print_ir

    prog, _, size = tiled_matmul(16, 128, 128, 64)
    ops = [op_of(i, f"op{n}") for n, i in enumerate(prog)] + [op_of(Instruction("ctl.halt", {}))]
    src = tmp_path / "mm.accel.mlir"
    src.write_text(print_ir(ModuleOp([ProgramOp("main", size, (), ops)])))
    out = tmp_path / "mm.sched.mlir"
    assert cli_main(["opt", str(src), "-p", "set-target,schedule-vliw", "-o", str(out)]) == 0
    text = out.read_text()
    assert "accel.bundle" in text and "accel.ctl.wait" in text
    # the scheduled file parses again and holds every original op once
    assert cli_main(["opt", str(out)]) == 0
    reparsed = capsys.readouterr().out
    assert sum(reparsed.count(f'"op{n}"') for n in range(len(prog))) == len(prog)
