"""The RTL machine (hardware/) against the simulator: DMA and control programs, errors, the CLI backend.

Differential: random programs of ld, ldg, st, ctl.wait and ctl.halt
(tests/hw_programs.py) run on the simulator and on the Verilated RTL from the
same DDR image on the `small` preset: the DDR images after HALT must be equal
byte for byte and every counter of the simulator's JSON (cycles, stalls by
cause, busy cycles, DDR bytes) equal.  Then programs that must fail: an
out-of-range transfer, a store of loaded bytes without the semaphore wait (a
RAW hazard the RTL sees because the load has not landed), a gather index
outside its limit, a deadlocked wait, an unimplemented unit.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from fastmamba.compiler.cli import main
from fastmamba.hardware.backend import RtlError, run_bundles
from fastmamba.isa.container import Binary, Program, TensorDesc, write_fmb
from fastmamba.isa.errors import InputError
from fastmamba.isa.instructions import Bundle, Instruction
from fastmamba.isa.target import PRESETS

from hw_programs import compare_random_programs, compare_stats, random_dma_program, run_rtl, run_sim

SMALL = PRESETS["small"]
N_RANDOM = 200


def test_random_dma_programs_bit_exact_and_cycle_equal():
    total_cycles = compare_random_programs(random_dma_program, SMALL, N_RANDOM)
    print(f"{N_RANDOM} random DMA programs: {total_cycles:,} cycles, equal on the simulator and the RTL")


def _ld(buf, ddr, rows, row_bytes, sem, ddr_stride=None, buf_stride=None):
    return Instruction("ld", dict(buf=buf, ddr=ddr, rows=rows, row_bytes=row_bytes, ddr_stride=ddr_stride or row_bytes,
                                  buf_stride=buf_stride or row_bytes, sem=sem))


def _st(ddr, buf, rows, row_bytes, sem):
    return Instruction("st", dict(ddr=ddr, buf=buf, rows=rows, row_bytes=row_bytes, ddr_stride=row_bytes,
                                  buf_stride=row_bytes, sem=sem))


WAIT1 = Instruction("ctl.wait", {"sem": 1, "count": 1})
HALT = Instruction("ctl.halt", {})


def _both_fail(bundles, ddr_bytes=4096):
    image = np.arange(ddr_bytes, dtype=np.uint64).astype(np.uint8)
    with pytest.raises(Exception) as sim:
        run_sim(SMALL, bundles, image)
    with pytest.raises(RtlError) as rtl:
        run_rtl(SMALL, bundles, image)
    assert "\n" not in str(rtl.value)
    return str(sim.value), str(rtl.value)


def test_out_of_range_dma_is_an_error_naming_the_bundle():
    bundles = [Bundle((_ld(0, 0, 2, 64, 1),)), Bundle((WAIT1,)), Bundle((_st(4096 - 64, 0, 2, 64, 1),)),
               Bundle((WAIT1,)), Bundle((HALT,))]
    sim, rtl = _both_fail(bundles)
    assert sim.startswith("bundle 2, slot ST") and "outside" in sim
    assert rtl.startswith("RTL: bundle 2, slot ST: `st ddr=") and "field ddr" in rtl and "outside" in rtl


def test_missing_semaphore_wait_is_a_raw_hazard():
    # the store reads the loaded bytes before the load lands: the RTL still holds the load in flight
    bundles = [Bundle((_ld(0, 0, 4, 32, 1),), delay=3), Bundle((_st(2048, 0, 4, 32, 2),)),
               Bundle((Instruction("ctl.wait", {"sem": 2, "count": 1}),)), Bundle((HALT,))]
    sim, rtl = _both_fail(bundles)
    assert "RAW hazard" in sim and sim.startswith("bundle 1, slot ST")
    assert rtl.startswith("RTL: bundle 1, slot ST") and "RAW hazard" in rtl and "(bundle 0, slot LD)" in rtl


def test_a_delay_too_short_for_the_transfer_is_a_hazard_and_a_long_enough_one_is_not():
    ld = _ld(0, 0, 4, 32, 0)
    done = 4 * 2 + SMALL.dma_latency  # 2 beats per 32-byte row, then the latency
    for delay, ok in ((done - 2, False), (done - 1, True)):
        bundles = [Bundle((ld,), delay=delay), Bundle((_st(2048, 0, 4, 32, 1),)), Bundle((WAIT1,)), Bundle((HALT,))]
        image = np.arange(4096, dtype=np.uint64).astype(np.uint8)
        if ok:
            sim_ddr, sim_stats = run_sim(SMALL, bundles, image)
            rtl_ddr, rtl_stats = run_rtl(SMALL, bundles, image)
            assert np.array_equal(sim_ddr, rtl_ddr) and sim_stats.cycles == rtl_stats.cycles
            assert np.array_equal(rtl_ddr[2048:2048 + 128], image[:128])
        else:
            _, rtl = _both_fail(bundles)
            assert "RAW hazard" in rtl


def test_of_two_conflicting_ops_in_flight_the_oldest_is_named():
    # A (bundle 1) takes table entry 1, B (bundle 3) entry 0, freed by the wait for X: the store reads what both
    # still write; the simulator names the first in issue order, and so does the RTL (not the lower entry)
    bundles = [Bundle((_ld(1024, 0, 1, 16, 1),)), Bundle((_ld(0, 0, 16, 32, 0),)), Bundle((WAIT1,)),
               Bundle((_ld(512, 0, 1, 32, 0),)), Bundle((_st(2048, 0, 1, 544, 0),)), Bundle((HALT,))]
    sim, rtl = _both_fail(bundles)
    assert sim.startswith("bundle 4, slot ST") and "RAW hazard" in sim and "bundle 1" in sim, sim
    assert rtl.startswith("RTL: bundle 4, slot ST") and "RAW hazard" in rtl and "(bundle 1, slot LD)" in rtl, rtl


def test_gather_index_outside_its_limit():
    idx = np.array([1, 0, 7], "<i4")  # limit 5: idx[2] is bad
    image = np.zeros(4096, np.uint8)
    image[1024:1036] = idx.view(np.uint8)
    bundles = [Bundle((_ld(0, 1024, 1, 12, 1),)), Bundle((WAIT1,)),
               Bundle((Instruction("ldg", dict(buf=64, ddr=0, idx=0, rows=3, row_bytes=8, ddr_stride=8, buf_stride=8,
                                               limit=5, sem=1)),)), Bundle((WAIT1,)), Bundle((HALT,))]
    with pytest.raises(Exception, match="idx\\[2\\] = 7"):
        run_sim(SMALL, bundles, image)
    with pytest.raises(RtlError, match=r"^RTL: bundle 2, slot LD: `ldg .*index idx\[2\] = 7 outside \[0, limit = 5\)"):
        run_bundles(SMALL, bundles, image.copy())


def test_deadlock():
    bundles = [Bundle((_ld(0, 0, 1, 16, 1),)), Bundle((Instruction("ctl.wait", {"sem": 1, "count": 2}),)),
               Bundle((HALT,))]
    sim, rtl = _both_fail(bundles)
    assert "deadlock" in sim and rtl.startswith("RTL: bundle 1, slot CTL") and "deadlock" in rtl


def test_units_the_rtl_lacks_are_refused_before_the_run(monkeypatch):
    from fastmamba.hardware import machine

    monkeypatch.delitem(machine.UNITS, "VEC")  # a machine without the VEC unit (refused before any build)
    vec = Instruction("vec.argmax", dict(dst=0, a=64, rows=1, cols=4))
    with pytest.raises(InputError, match="not implemented in the RTL yet: vec.argmax"):
        run_bundles(SMALL, [Bundle((vec,)), Bundle((HALT,))], np.zeros(64, np.uint8))


def _copy_binary(tmp_path):
    prog = Program("main", ddr_size=4096, bundles=(
        Bundle((_ld(0, 0, 3, 40, 1, ddr_stride=48),)), Bundle((WAIT1,)),
        Bundle((_st(1024, 0, 3, 40, 1),)), Bundle((WAIT1,)), Bundle((HALT,))), tensors=(
        TensorDesc("x", "input", 0, (3, 12), "i32"),
        TensorDesc("y", "output", 1024, (3, 10), "i32")))
    path = tmp_path / "copy.fmb"
    write_fmb(path, Binary((prog,), const_image=b"", target_digest=SMALL.digest()))
    return path


def test_cli_backend_rtl_same_json_as_the_simulator(tmp_path, capsys):
    path = _copy_binary(tmp_path)
    x = (np.arange(36, dtype=np.int32) * 1000 - 7).reshape(3, 12)
    np.save(tmp_path / "x.npy", x)
    docs = {}
    for backend in ("sim", "rtl"):
        code = main(["sim", str(path), "--target", "small", "--json", "--backend", backend,
                     "--input", f"x={tmp_path / 'x.npy'}"])
        out, err = capsys.readouterr()
        assert code == 0 and err == ""
        docs[backend] = json.loads(out)
    rtl_cycles = docs["rtl"].pop("rtl_cycles")
    assert rtl_cycles == docs["rtl"]["cycles"] + 1
    assert docs["rtl"] == docs["sim"]
    assert docs["rtl"]["outputs"]["y"]["summary"]["first"] == x[0, :8].tolist()


def test_cli_backend_rtl_error_is_one_line(tmp_path, capsys):
    prog = Program("main", ddr_size=4096, bundles=(Bundle((_ld(0, 0, 1, 16, 1),), delay=2),
                                                  Bundle((_st(1024, 0, 1, 16, 1),)), Bundle((WAIT1,)),
                                                  Bundle((HALT,))), tensors=())
    path = tmp_path / "bad.fmb"
    write_fmb(path, Binary((prog,), const_image=b"", target_digest=SMALL.digest()))
    code = main(["sim", str(path), "--target", "small", "--backend", "rtl"])
    out, err = capsys.readouterr()
    assert code == 1 and err.count("\n") == 1 and "RTL: bundle 1, slot ST" in err and "RAW hazard" in err


def test_a_second_run_does_not_rebuild():
    import time

    from fastmamba.hardware import backend, build

    lib = build.library(SMALL, backend.IMEM_WORDS)
    mtime = lib.stat().st_mtime
    start = time.perf_counter()
    assert build.library(SMALL, backend.IMEM_WORDS) == lib
    assert time.perf_counter() - start < 5.0 and lib.stat().st_mtime == mtime
    assert lib.parent.parent == build.build_root() and (lib.parent / "top.v").exists()


def test_targets_the_rtl_cannot_build_are_refused_in_one_line():
    with pytest.raises(InputError, match=r"^target vc709: the RTL .*dma_bytes_per_cycle must be a power of two"):
        run_bundles(PRESETS["vc709"], [Bundle((HALT,))], np.zeros(64, np.uint8))


def _merged(bundles):
    """Each store with the load after it in one bundle (the generator's loads write fresh bytes)."""
    out, i = [], 0
    while i < len(bundles):
        if i + 1 < len(bundles) and bundles[i].ops[0].op == "st" and bundles[i + 1].ops[0].op in ("ld", "ldg"):
            out.append(Bundle(bundles[i].ops + bundles[i + 1].ops, bundles[i + 1].delay))
            i += 2
        else:
            out.append(bundles[i])
            i += 1
    return out


def test_load_and_store_in_one_bundle():
    merged = 0
    for seed in range(0, N_RANDOM, 2):
        bundles, image = random_dma_program(seed, SMALL)
        both = _merged(bundles)
        merged += len(bundles) - len(both)
        sim_ddr, sim_stats = run_sim(SMALL, both, image)
        rtl_ddr, rtl_stats = run_rtl(SMALL, both, image)
        assert np.array_equal(sim_ddr, rtl_ddr) and not compare_stats(sim_stats, rtl_stats), seed
    assert merged > 50


def test_hazard_between_the_ops_of_one_bundle():
    bundles = [Bundle((_ld(0, 0, 2, 16, 1), _st(2048, 8, 1, 16, 2))), Bundle((WAIT1,)),
               Bundle((Instruction("ctl.wait", {"sem": 2, "count": 1}),)), Bundle((HALT,))]
    sim, rtl = _both_fail(bundles)
    assert sim.startswith("bundle 0, slot ST") and "RAW hazard" in sim
    assert rtl.startswith("RTL: bundle 0, slot ST") and "RAW hazard" in rtl and "(bundle 0, slot LD)" in rtl
