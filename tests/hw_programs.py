"""Random valid programs for the RTL differential tests (tests/test_hw_*.py), and the runs they compare.

Programs are built as `Bundle`s with fastmamba.isa and are hazard-free by
construction: every transfer writes buffer or DDR bytes no operation in flight
touches (fresh regions from bump allocators), and every read of loaded data
follows a `ctl.wait` on the loads' semaphores.  `run_both` runs a program on
the simulator (simulator.engine) and on the RTL (hardware.backend) from the
same DDR image and returns both images and both counters.
"""

from __future__ import annotations

import random

import numpy as np

from fastmamba.isa.instructions import Bundle, Instruction

DDR_BYTES = 1 << 16
SRC_END = 1 << 15  # sources live in [0, SRC_END); stores write above it


class _Alloc:
    def __init__(self, start: int, stop: int):
        self.start, self.stop, self.next = start, stop, start

    def take(self, nbytes: int, align: int = 1) -> int | None:
        at = -(-self.next // align) * align
        if at + nbytes > self.stop:
            return None
        self.next = at + nbytes
        return at


def _rows(rng: random.Random, max_bytes: int):
    rows = rng.randint(1, 6)
    row_bytes = rng.choice([rng.randint(1, 40), 16, 32, rng.randint(1, 70)])
    pad = rng.choice([0, 0, rng.randint(1, 24)])
    return rows, row_bytes, row_bytes + pad


def random_dma_program(seed: int, target) -> tuple[list[Bundle], np.ndarray]:
    """A program of ld, ldg, st, ctl.wait and ctl.halt, and its DDR image (random sources, zero outputs)."""
    rng = random.Random(seed)
    n_sems = min(target.semaphores, 8)
    image = np.zeros(DDR_BYTES, np.uint8)
    image[:SRC_END] = np.random.default_rng(seed).integers(0, 256, SRC_END, dtype=np.uint8)
    bundles: list[Bundle] = []
    outs = _Alloc(SRC_END, DDR_BYTES)
    buf_bytes = int(target.buffer_bytes)
    pending: dict[int, int] = {}

    def emit(ops, delay=None):
        bundles.append(Bundle(tuple(ops), rng.choice([0, 0, 0, 1, 3, 17]) if delay is None else delay))

    half = n_sems // 2
    load_sems, store_sems = range(1, half + 1), range(half + 1, n_sems + 1)

    def wait_all(sems=range(1, n_sems + 1)):
        for sem in sems:
            if pending.get(sem):
                emit([Instruction("ctl.wait", {"sem": sem, "count": pending.pop(sem)})])

    def sem(pool):
        s = rng.choice(pool)
        pending[s] = pending.get(s, 0) + 1
        return s

    # index tables for ldg: int32 values in [0, limit) placed in the source area
    limit = 24
    bufs = _Alloc(0, buf_bytes)
    for _ in range(rng.randint(2, 4)):
        if bufs.next > buf_bytes // 2:  # reuse the buffer once every store reading it has completed
            wait_all()
            bufs = _Alloc(0, buf_bytes)
        loaded = []  # (buf, rows, row_bytes, buf_stride) regions complete after the epoch's waits
        n_loads = rng.randint(1, 6)
        for _ in range(n_loads):
            kind = rng.choice(["ld", "ld", "ldg"])
            rows, row_bytes, buf_stride = _rows(rng, 256)
            if kind == "ldg":
                # load the index vector first, wait for it, then gather
                idx_src = rng.randrange(0, SRC_END - 4 * rows, 4)
                values = np.array([rng.randrange(limit) for _ in range(rows)], "<i4")
                image[idx_src:idx_src + 4 * rows] = values.view(np.uint8)
                idx_buf = bufs.take(4 * rows, 4)
                dst = bufs.take((rows - 1) * buf_stride + row_bytes)
                if idx_buf is None or dst is None:
                    break
                s = rng.choice(load_sems)
                emit([Instruction("ld", dict(buf=idx_buf, ddr=idx_src, rows=1, row_bytes=4 * rows, ddr_stride=4 * rows,
                                             buf_stride=4 * rows, sem=s))])
                emit([Instruction("ctl.wait", {"sem": s, "count": 1 + pending.pop(s, 0)})])
                ddr_stride = row_bytes + rng.randint(0, 8)
                table = rng.randrange(0, SRC_END - limit * ddr_stride)
                emit([Instruction("ldg", dict(buf=dst, ddr=table, idx=idx_buf, rows=rows, row_bytes=row_bytes,
                                              ddr_stride=ddr_stride, buf_stride=buf_stride, limit=limit,
                                              sem=sem(load_sems)))])
            else:
                dst = bufs.take((rows - 1) * buf_stride + row_bytes)
                if dst is None:
                    break
                ddr_stride = row_bytes + rng.choice([0, rng.randint(1, 64)])
                src = rng.randrange(0, SRC_END - rows * ddr_stride)
                emit([Instruction("ld", dict(buf=dst, ddr=src, rows=rows, row_bytes=row_bytes, ddr_stride=ddr_stride,
                                             buf_stride=buf_stride, sem=sem(load_sems)))])
            loaded.append((dst, rows, row_bytes, buf_stride))
        wait_all(load_sems)
        # store every loaded region (possibly re-shaped: same bytes per row) to fresh DDR; a store may share a
        # bundle with the next epoch's first load
        for dst, rows, row_bytes, buf_stride in loaded:
            ddr_stride = row_bytes + rng.choice([0, rng.randint(1, 16)])
            out = outs.take((rows - 1) * ddr_stride + row_bytes)
            if out is None:
                break
            emit([Instruction("st", dict(ddr=out, buf=dst, rows=rows, row_bytes=row_bytes, ddr_stride=ddr_stride,
                                         buf_stride=buf_stride, sem=sem(store_sems)))])
    wait_all()
    emit([Instruction("ctl.halt", {})], delay=0)
    return bundles, image


def run_sim(target, bundles, image):
    from fastmamba.simulator.effects import MachineState
    from fastmamba.simulator.engine import Engine

    state = MachineState(ddr=image.copy(), buf=np.zeros(int(target.buffer_bytes), np.uint8))
    stats = Engine(target).run(bundles, state)
    return state.ddr, stats


def run_rtl(target, bundles, image):
    from fastmamba.hardware.backend import run_bundles

    ddr = image.copy()
    stats = run_bundles(target, bundles, ddr)
    return ddr, stats


def compare_stats(sim, rtl) -> list[str]:
    """The counters that differ (the simulator's JSON keys)."""
    a, b = sim.to_dict(), rtl.to_dict()
    return [k for k in a if a[k] != b.get(k)]


def compare_random_programs(generate, target, count: int) -> int:
    """Run `count` programs `generate(seed, target)` on the simulator and the RTL; assert equal DDR images
    (byte for byte) and equal counters, and that the RTL saw `done` one cycle after the last completion.
    Returns the programs' total cycles."""
    differ = []
    total_cycles = 0
    for seed in range(count):
        bundles, image = generate(seed, target)
        sim_ddr, sim_stats = run_sim(target, bundles, image)
        rtl_ddr, rtl_stats = run_rtl(target, bundles, image)
        bad = np.flatnonzero(sim_ddr != rtl_ddr)
        assert bad.size == 0, f"seed {seed}: {bad.size} DDR bytes differ, first at {bad[0]:#x}"
        keys = compare_stats(sim_stats, rtl_stats)
        if keys:
            differ.append((seed, {k: (sim_stats.to_dict()[k], rtl_stats.to_dict()[k]) for k in keys}))
        assert rtl_stats.rtl_cycles == rtl_stats.cycles + 1, seed  # the cycle that sees `done`
        total_cycles += sim_stats.cycles
    assert not differ, differ[:3]
    return total_cycles


def _f32_bits(values) -> np.ndarray:
    return np.asarray(values, "<f4").view(np.uint8)


def random_lin_program(seed: int, target, schedule_target=None) -> tuple[list[Bundle], np.ndarray]:
    """Load operands, run 1-3 `lin` ops (k-tiled with acc where drawn), store the results, halt.

    Each LIN bundle's delay is the op's duration on `schedule_target` (default: `target`) minus one, so the
    store (or the next tile) issues the cycle the results complete: a wrong latency there reads too early."""
    from fastmamba.isa import costs

    sched = schedule_target or target
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    max_block = int(target.hadamard_max_block)
    image = np.zeros(DDR_BYTES, np.uint8)
    ddr = _Alloc(0, SRC_END)
    buf = _Alloc(0, int(target.buffer_bytes))
    bundles: list[Bundle] = []
    m = rng.randint(1, 5)
    n = rng.randint(1, 9)
    hlog2 = rng.randint(0, max_block.bit_length() - 1)
    block = 1 << hlog2
    tiles = rng.choice([1, 1, 2, 3])
    k_tile = block * rng.randint(1, max(1, 48 // block))
    k = k_tile * tiles
    src_type = rng.choice(["i8", "i16"])
    esize = 1 if src_type == "i8" else 2
    src_ld = k + rng.choice([0, 0, rng.randint(1, 9)])
    dst_ld = n + rng.choice([0, rng.randint(1, 5)])
    lo, hi = (-128, 128) if src_type == "i8" else rng.choice([(-32768, 32768), (-300, 300), (-3, 4)])
    src = nrng.integers(lo, hi, (m, src_ld), dtype=np.int64).astype("<i1" if esize == 1 else "<i2")
    wgt = nrng.integers(-128, 128, (n, k), dtype=np.int64).astype("<i1")
    dst0 = nrng.integers(-(1 << 31), 1 << 31, (m, dst_ld), dtype=np.int64).astype("<i4")
    if rng.random() < 0.5:
        dst0 = (dst0 >> rng.randint(0, 31)).astype("<i4")
    scale = (nrng.standard_normal(n) * 10.0 ** rng.randint(-6, 2)).astype("<f4")
    regions = {"src": src.view(np.uint8).reshape(-1), "wgt": wgt.view(np.uint8).reshape(-1),
               "dst": dst0.view(np.uint8).reshape(-1), "scale": scale.view(np.uint8)}
    at = {}
    for sem, (name, raw) in enumerate(regions.items(), start=1):
        d = ddr.take(raw.size, 4)
        b = buf.take(raw.size, 4)
        image[d:d + raw.size] = raw
        at[name] = b
        bundles.append(Bundle((Instruction("ld", dict(buf=b, ddr=d, rows=1, row_bytes=raw.size,
                                                      ddr_stride=raw.size, buf_stride=raw.size, sem=sem)),)))
    for sem in range(1, len(regions) + 1):
        bundles.append(Bundle((Instruction("ctl.wait", {"sem": sem, "count": 1}),)))
    qmul = rng.choice([1, rng.randint(1, 70000 >> 2), rng.randint(1, 65535)])
    qshift = rng.choice([0, rng.randint(0, 20), rng.randint(0, 63)])
    acc0 = rng.randint(0, 1)
    out_last = rng.choice(["i32", "f32"])
    for tile in range(tiles):
        last = tile == tiles - 1
        op = Instruction("lin", dict(
            dst=at["dst"], src=at["src"] + tile * k_tile * esize, wgt=at["wgt"] + tile * k_tile, scale=at["scale"],
            m=m, k=k_tile, n=n, src_ld=src_ld, dst_ld=dst_ld, src_type=src_type, hlog2=hlog2, qmul=qmul,
            qshift=qshift, acc=acc0 if tile == 0 else 1, out=out_last if last else "i32"))
        # the wgt rows of a tile are k apart, the op's weights contiguous: tiles need k_tile = k
        if tiles > 1:
            op = Instruction("lin", {**dict(op.args), "wgt": at["wgt"] + tile * n * k_tile})
        bundles.append(Bundle((op,), costs.duration(op, sched) - 1))
    nbytes = regions["dst"].size
    out = ddr.take(nbytes, 4)
    bundles.append(Bundle((Instruction("st", dict(ddr=out, buf=at["dst"], rows=1, row_bytes=nbytes,
                                                  ddr_stride=nbytes, buf_stride=nbytes, sem=1)),)))
    bundles.append(Bundle((Instruction("ctl.wait", {"sem": 1, "count": 1}),)))
    bundles.append(Bundle((Instruction("ctl.halt", {}),)))
    return bundles, image


def random_conv_program(seed: int, target, schedule_target=None) -> tuple[list[Bundle], np.ndarray]:
    """Load operands, run 1-3 `conv` ops over consecutive token chunks (the state carried with upd), store
    dst and the state, halt.  Delays as in `random_lin_program`."""
    from fastmamba.isa import costs

    sched = schedule_target or target
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    image = np.zeros(DDR_BYTES, np.uint8)
    ddr = _Alloc(0, SRC_END)
    buf = _Alloc(0, int(target.buffer_bytes))
    bundles: list[Bundle] = []
    kw = rng.randint(2, int(target.conv_kernel_max))
    c = rng.randint(1, 11)
    chunks = [rng.randint(1, 6) for _ in range(rng.choice([1, 1, 2, 3]))]
    t = sum(chunks)
    out_type = rng.choice(["i16", "i32"])
    osize = 2 if out_type == "i16" else 4
    src_ld = c + rng.choice([0, rng.randint(1, 5)])
    dst_ld = c + rng.choice([0, rng.randint(1, 5)])
    big = rng.random() < 0.5
    lim = 32768 if big else 300
    src = nrng.integers(-lim, lim, (t, src_ld), dtype=np.int64).astype("<i2")
    state = nrng.integers(-lim, lim, (kw - 1, c), dtype=np.int64).astype("<i2")
    wgt = nrng.integers(-lim, lim, (kw, c), dtype=np.int64).astype("<i2")
    bias = nrng.integers(-(1 << 31), 1 << 31, c, dtype=np.int64).astype("<i4")
    if not big:
        bias = (bias >> 16).astype("<i4")
    dst0 = np.zeros((t, dst_ld), "<i2" if osize == 2 else "<i4")
    regions = {"src": src, "state": state, "wgt": wgt, "bias": bias, "dst": dst0}
    at, at_ddr = {}, {}
    for sem, (name, arr) in enumerate(regions.items(), start=1):
        raw = arr.view(np.uint8).reshape(-1)
        d = ddr.take(raw.size, 4)
        b = buf.take(raw.size, 4)
        image[d:d + raw.size] = raw
        at[name], at_ddr[name] = b, d
        bundles.append(Bundle((Instruction("ld", dict(buf=b, ddr=d, rows=1, row_bytes=raw.size, ddr_stride=raw.size,
                                                      buf_stride=raw.size, sem=min(sem, target.semaphores))),)))
    for sem in range(1, len(regions) + 1):
        bundles.append(Bundle((Instruction("ctl.wait", {"sem": sem, "count": 1}),)))
    shift = rng.choice([0, rng.randint(0, 20), rng.randint(0, 127), 1])
    start = 0
    for i, tc in enumerate(chunks):
        op = Instruction("conv", dict(
            dst=at["dst"] + start * dst_ld * osize, src=at["src"] + start * src_ld * 2, state=at["state"],
            wgt=at["wgt"], bias=at["bias"], t=tc, c=c, kw=kw, src_ld=src_ld, dst_ld=dst_ld, shift=shift,
            out_type=out_type, upd=1 if i < len(chunks) - 1 else rng.randint(0, 1)))
        bundles.append(Bundle((op,), costs.duration(op, sched) - 1))
        start += tc
    for sem, name in ((1, "dst"), (2, "state")):
        raw = regions[name].view(np.uint8).reshape(-1)
        out = ddr.take(raw.size, 4)
        bundles.append(Bundle((Instruction("st", dict(ddr=out, buf=at[name], rows=1, row_bytes=raw.size,
                                                      ddr_stride=raw.size, buf_stride=raw.size, sem=sem)),)))
    for sem in (1, 2):
        bundles.append(Bundle((Instruction("ctl.wait", {"sem": sem, "count": 1}),)))
    bundles.append(Bundle((Instruction("ctl.halt", {}),)))
    return bundles, image


_VEC_OPS_B = ("add", "mul", "gate")  # isa.numerics.MICRO_OPS_WITH_B
_VEC_TYPES = ("i8", "i16", "i32", "f32")


def _vec_values(rng: random.Random, nrng, shape, dtype: str, *, nan: int | None, inf: bool) -> np.ndarray:
    """Random operand values of a machine type: integers over the full range or small; binary32 over many
    magnitudes with ties (x.5), signed zeros, subnormals, +-inf (`inf`) and one NaN bit pattern (`nan`)."""
    if dtype != "f32":
        np_type = numpy_dtype_of(dtype)
        lo, hi = int(np.iinfo(np_type).min), int(np.iinfo(np_type).max)
        if rng.random() < 0.5:
            lo, hi = max(lo, -300), min(hi, 300)
        return nrng.integers(lo, hi, shape, endpoint=True, dtype=np.int64).astype(np_type)
    x = (nrng.standard_normal(shape) * 10.0 ** nrng.integers(-4, 5, shape)).astype(np.float32)
    if rng.random() < 0.3:  # the silu/softplus range's far ends and the threshold
        x = (nrng.uniform(-120, 120, shape)).astype(np.float32)
    flat = x.reshape(-1)
    specials = [0.0, -0.0, 0.5, 2.5, -3.5, 127.5, 20.0, 1e-42, -1e-42, 40000.5]
    if inf:
        specials += [np.inf, -np.inf]
    for i in nrng.integers(0, flat.size, nrng.integers(0, 1 + flat.size // 3)):
        flat[i] = specials[rng.randrange(len(specials))]
    if nan is not None and flat.size > 1:
        flat.view(np.uint32)[rng.randrange(flat.size)] = nan
    return x


def random_vec_program(seed: int, target, schedule_target=None) -> tuple[list[Bundle], np.ndarray]:
    """Load operands, run 1-3 `vec` / `vec.argmax` ops (random chains of up to four micro-ops with at most one
    rmsnorm, every type and b mode, padded pitches, in place over a sometimes; binary32 operands with ties,
    saturating values, signed zeros, subnormals, +-inf and NaN), store every dst, halt.  A single op's bundle
    delay is its duration on `schedule_target` (default: `target`) minus one, so the store issues the cycle the
    results complete; several ops issue back to back (the unit's pipeline holds two at once) with a prefetch
    load beside the first.

    NaN only in a, and not with rmsnorm: where one operation meets two different NaNs numpy returns either
    (docs/NUMERICS.md §6), so such inputs have no single expected result."""
    from fastmamba.isa import costs

    sched = schedule_target or target
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    image = np.zeros(DDR_BYTES, np.uint8)
    ddr = _Alloc(0, SRC_END)
    buf = _Alloc(0, int(target.buffer_bytes))
    loads: list[Instruction] = []
    outs: list[tuple[int, int]] = []  # (buf, bytes) regions to store

    def place(arr: np.ndarray, store: bool = False) -> int:
        raw = np.ascontiguousarray(arr).view(np.uint8).reshape(-1)
        d, b = ddr.take(raw.size, 4), buf.take(raw.size, 4)
        assert d is not None and b is not None
        image[d:d + raw.size] = raw
        loads.append(Instruction("ld", dict(buf=b, ddr=d, rows=1, row_bytes=raw.size, ddr_stride=raw.size,
                                            buf_stride=raw.size, sem=1 + len(loads) % target.semaphores)))
        if store:
            outs.append((b, raw.size))
        return b

    ops: list[Instruction] = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        rows = rng.randint(1, 4)
        cols = rng.choice([rng.randint(1, 9), rng.randint(1, 24), 16, 8 * rng.randint(1, 4)])
        if rng.random() < 0.15:
            a = _vec_values(rng, nrng, (rows, cols), "f32", nan=None, inf=True)
            at = place(a)
            dst = place(np.full(rows, -7, "<i4"), store=True)
            ops.append(Instruction("vec.argmax", dict(dst=dst, a=at, rows=rows, cols=cols)))
            continue
        chain = [rng.choice(("none", "add", "mul", "silu", "gate", "softplus", "rmsnorm", "add", "mul"))
                 for _ in range(4)]
        while chain.count("rmsnorm") > 1:
            chain[chain.index("rmsnorm")] = "none"
        rms = "rmsnorm" in chain
        needs_b = any(op in _VEC_OPS_B for op in chain)
        b_mode = rng.choice(("full", "row")) if needs_b else rng.choice(("none", "full", "row"))
        a_type, b_type, out_type = (rng.choice(_VEC_TYPES) for _ in range(3))
        a_exp, b_exp = (rng.choice([0, rng.randint(-12, 4), rng.randint(-128, 127)]) for _ in range(2))
        a_ld, b_ld, dst_ld = (cols + rng.choice([0, 0, rng.randint(1, 5)]) for _ in range(3))
        nan = None if rms or rng.random() < 0.5 else rng.choice([0x7FC00000, 0xFFC00000, 0x7FA00001, 0xFF812345])
        a = _vec_values(rng, nrng, (rows, a_ld), a_type, nan=nan, inf=rng.random() < 0.3)
        b = _vec_values(rng, nrng, (rows if b_mode == "full" else 1, b_ld if b_mode == "full" else cols), b_type,
                        nan=None, inf=rng.random() < 0.3)
        odt = numpy_dtype_of(out_type)
        dst0 = np.full((rows, dst_ld), -3, odt) if out_type != "f32" else np.full((rows, dst_ld), -3.0, odt)
        at = place(a)
        bt = place(b) if b_mode != "none" else 0
        if odt.itemsize == a.dtype.itemsize and rng.random() < 0.2:  # in place over a
            dst, dst_ld = at, a_ld
            outs.append((at, a.nbytes))
        else:
            dst = place(dst0, store=True)
        divisors = [d for d in range(1, cols + 1) if cols % d == 0]
        group = rng.choice(divisors) if rms else rng.randint(0, 3)
        out_scale = rng.choice([1.0, 1.0, 0.5, 3.0, float(np.float32(nrng.uniform(0.01, 100)))])
        ops.append(Instruction("vec", dict(
            dst=dst, a=at, b=bt, rows=rows, cols=cols, a_ld=a_ld, b_ld=b_ld, dst_ld=dst_ld, a_type=a_type,
            a_exp=a_exp, b_type=b_type, b_exp=b_exp, b_mode=b_mode, op0=chain[0], op1=chain[1], op2=chain[2],
            op3=chain[3], group=group, eps=rng.choice([0.0, 1e-5, 1e-6, 1.0]), out_type=out_type,
            out_scale=out_scale)))
    bundles: list[Bundle] = [Bundle((ld,)) for ld in loads]
    for sem in sorted({ld["sem"] for ld in loads}):
        bundles.append(Bundle((Instruction("ctl.wait", {"sem": sem, "count": sum(ld["sem"] == sem for ld in loads)}),)))
    if len(ops) == 1:
        bundles.append(Bundle((ops[0],), costs.duration(ops[0], sched) - 1))
    else:
        pre = Instruction("ld", dict(buf=buf.take(64, 4), ddr=0, rows=2, row_bytes=32, ddr_stride=48, buf_stride=32,
                                     sem=1))
        bundles.append(Bundle((pre, ops[0])))
        outs.append((pre["buf"], 64))
        for op in ops[1:]:
            bundles.append(Bundle((op,)))
        bundles[-1] = Bundle(bundles[-1].ops, sum(costs.duration(op, sched) for op in ops))
        bundles.append(Bundle((Instruction("ctl.wait", {"sem": 1, "count": 1}),)))
    for b, nbytes in outs:
        d = ddr.take(nbytes, 4)
        assert d is not None
        bundles.append(Bundle((Instruction("st", dict(ddr=d, buf=b, rows=1, row_bytes=nbytes, ddr_stride=nbytes,
                                                      buf_stride=nbytes, sem=2)),)))
    bundles.append(Bundle((Instruction("ctl.wait", {"sem": 2, "count": len(outs)}),)))
    bundles.append(Bundle((Instruction("ctl.halt", {}),)))
    return bundles, image


def numpy_dtype_of(name: str) -> np.dtype:
    from fastmamba.isa.dtypes import numpy_dtype

    return np.dtype(numpy_dtype(name))


def random_ssm_program(seed: int, target, schedule_target=None, split=None) -> tuple[list[Bundle], np.ndarray]:
    """Load operands, run `ssm` ops over 1-3 token chunks (the state carried from chunk to chunk), each
    chunk as one op or (drawn, or `split`) as two ops over whole B/C groups of heads issued back to back
    (the second waits for the unit: a structural stall; each writes its own y), store y and the state, halt.
    Random layouts (hpg, b_off / c_off, pitches), fraction bits across dt_frac's range, shifts from 0 to 127
    (ties and saturation included), values small or at the types' ends.  Delays as in `random_lin_program`."""
    from fastmamba.isa import costs

    sched = schedule_target or target
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    image = np.zeros(DDR_BYTES, np.uint8)
    ddr = _Alloc(0, SRC_END)
    buf = _Alloc(0, int(target.buffer_bytes))
    bundles: list[Bundle] = []
    h = rng.randint(1, 4)
    hpg = rng.randint(1, h)
    groups = -(-h // hpg)
    p, n = rng.choice([rng.randint(1, 9), int(target.ssm_headdim_lanes)]), rng.randint(1, 9)
    chunks = [rng.randint(1, 4) for _ in range(rng.choice([1, 1, 2, 3]))]
    t = sum(chunks)
    b_off = h * p + rng.choice([0, rng.randint(0, 5)])
    c_off = b_off + groups * n + rng.choice([0, rng.randint(0, 5)])
    if rng.random() < 0.25:
        b_off, c_off = c_off, b_off  # C before B
    xbc_ld = max(h * p, b_off + groups * n, c_off + groups * n) + rng.choice([0, rng.randint(1, 6)])
    dt_ld = h + rng.choice([0, rng.randint(1, 4)])
    halves = [(0, h)]
    if (split if split is not None else rng.random() < 0.3) and groups > 1:
        h1 = hpg * rng.randint(1, groups - 1)
        halves = [(0, h1), (h1, h)]
    y_ld = [(h_end - h0) * p + rng.choice([0, rng.randint(1, 4)]) for h0, h_end in halves]
    big = rng.random() < 0.4
    lim = 32768 if big else rng.choice([300, 3000])
    xbc = nrng.integers(-lim, lim, (t, xbc_ld), dtype=np.int64).astype("<i2")
    dt_raw = nrng.integers(-lim, lim, (t, dt_ld), dtype=np.int64).astype("<i2")
    params = np.zeros((h, 4), np.int64)
    params[:, 0] = -(nrng.integers(0, 1 << 31, h) >> nrng.integers(0, 32, h))  # A <= 0, every magnitude
    if rng.random() < 0.2:
        params[rng.randrange(h), 0] = rng.choice([0, 1, (1 << 31) - 1, -(1 << 31)])
    params[:, 1] = nrng.integers(-(1 << 31), 1 << 31, h) >> nrng.integers(0, 32, h)  # D
    params[:, 2] = nrng.integers(-(1 << 31), 1 << 31, h) >> nrng.integers(0, 32, h)  # dt_bias
    params = params.astype("<i4")
    state = (nrng.integers(-(1 << 31), 1 << 31, (h * p, n), dtype=np.int64)
             >> rng.choice([0, 8, 16, 24])).astype("<i4")
    regions = {"xbc": xbc, "dt": dt_raw, "params": params, "state": state}
    for k, ld in enumerate(y_ld):
        regions[f"y{k}"] = np.zeros((t, ld), "<i4")
    at = {}
    for sem, (name, arr) in enumerate(regions.items(), start=1):
        raw = arr.view(np.uint8).reshape(-1)
        d = ddr.take(raw.size, 4)
        b = buf.take(raw.size, 4)
        image[d:d + raw.size] = raw
        at[name] = b
        bundles.append(Bundle((Instruction("ld", dict(buf=b, ddr=d, rows=1, row_bytes=raw.size, ddr_stride=raw.size,
                                                      buf_stride=raw.size, sem=min(sem, target.semaphores))),)))
    for sem in range(1, len(regions) + 1):
        bundles.append(Bundle((Instruction("ctl.wait", {"sem": min(sem, target.semaphores), "count": 1}),)))
    low, high = target.nla_segments.bit_length() - 1, target.nla_bits - 1
    dt_frac = rng.choice([low, high, rng.randint(low, high)])
    a_frac = rng.choice([dt_frac, rng.randint(0, 63), 0, 63])
    dbx_shift, y_shift, d_shift = (rng.choice([0, 1, rng.randint(0, 40), rng.randint(0, 127)]) for _ in range(3))
    start = 0
    for tc in chunks:
        ops = []
        for k, (h0, h_end) in enumerate(halves):
            g0 = h0 // hpg
            ops.append(Instruction("ssm", dict(
                y=at[f"y{k}"] + start * y_ld[k] * 4, xbc=at["xbc"] + (start * xbc_ld + h0 * p) * 2,
                dt=at["dt"] + (start * dt_ld + h0) * 2, params=at["params"] + h0 * 16,
                state=at["state"] + h0 * p * n * 4, t=tc, h=h_end - h0, p=p, n=n, hpg=hpg, xbc_ld=xbc_ld,
                b_off=b_off + g0 * n - h0 * p, c_off=c_off + g0 * n - h0 * p, dt_ld=dt_ld, y_ld=y_ld[k],
                dt_frac=dt_frac, a_frac=a_frac, dbx_shift=dbx_shift, y_shift=y_shift, d_shift=d_shift)))
        for k, op in enumerate(ops):
            last = k == len(ops) - 1
            bundles.append(Bundle((op,), costs.duration(op, sched) - 1 if last else 0))
        start += tc
    outputs = ["state"] + [f"y{k}" for k in range(len(halves))]
    for name in outputs:
        raw = regions[name].view(np.uint8).reshape(-1)
        out = ddr.take(raw.size, 4)
        bundles.append(Bundle((Instruction("st", dict(ddr=out, buf=at[name], rows=1, row_bytes=raw.size,
                                                      ddr_stride=raw.size, buf_stride=raw.size, sem=1)),)))
    bundles.append(Bundle((Instruction("ctl.wait", {"sem": 1, "count": len(outputs)}),)))
    bundles.append(Bundle((Instruction("ctl.halt", {}),)))
    return bundles, image
