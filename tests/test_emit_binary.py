"""The emitter: scheduled accel IR -> Binary -> .fmb, run by the simulator backend with the right result."""

from __future__ import annotations

import numpy as np
import pytest
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp

from fastmamba.compiler.backend.emit import emit_binary, write_binary
from fastmamba.compiler.dialects.accel import TARGET_ATTR, ProgramOp, op_of, target_attr
from fastmamba.isa.container import TensorDesc, read_fmb
from fastmamba.isa.errors import InputError
from fastmamba.isa.instructions import Instruction
from fastmamba.isa.target import load_target
from fastmamba.passes.schedule_vliw import ScheduleVliwPass
from fastmamba.simulator.runtime import SimulatorBackend

VC709 = load_target("vc709")
M, K, N, TILE = 8, 128, 128, 32


def matmul_module() -> tuple[ModuleOp, bytes]:
    """C[M, N] (tile-major in DDR) = A @ W^T; W in the constant image, A an input."""
    w_ddr, a_ddr = 0, N * K
    c_ddr = a_ddr + M * K
    ops = [op_of(Instruction("ld", dict(buf=0, ddr=a_ddr, rows=M, row_bytes=K, ddr_stride=K, buf_stride=K, sem=0)),
                 "load a")]
    for j in range(N // TILE):
        wb, out = 0x1000 + (j % 2) * TILE * K, 0x4000 + j * M * TILE * 4
        ops += [
            op_of(Instruction("ld", dict(buf=wb, ddr=w_ddr + j * TILE * K, rows=TILE, row_bytes=K, ddr_stride=K,
                                         buf_stride=K, sem=0)), f"load w{j}"),
            op_of(Instruction("lin", dict(dst=out, src=0, wgt=wb, scale=0, m=M, k=K, n=TILE, src_ld=K, dst_ld=TILE,
                                          src_type="i8", hlog2=0, qmul=1, qshift=0, acc=0, out="i32")),
                  f"mamba.linear tile {j}"),
            op_of(Instruction("st", dict(ddr=c_ddr + j * M * TILE * 4, buf=out, rows=M, row_bytes=TILE * 4,
                                         ddr_stride=TILE * 4, buf_stride=TILE * 4, sem=0)), f"store c{j}"),
        ]
    tensors = [TensorDesc("a", "input", a_ddr, (M, K), "i8"), TensorDesc("c", "output", c_ddr, (N // TILE, M, TILE),
                                                                         "i32")]
    weights = np.random.default_rng(1).integers(-128, 128, (N, K), dtype=np.int8)
    module = ModuleOp([ProgramOp("main", c_ddr + M * N * 4, tensors, ops)])
    module.attributes[TARGET_ATTR] = target_attr("vc709")
    return module, weights.tobytes()


def test_emitted_binary_runs_and_computes_the_matmul(tmp_path):
    module, image = matmul_module()
    ScheduleVliwPass().apply(Context(), module)
    path = tmp_path / "mm.fmb"
    binary = write_binary(module, path, VC709, image)
    loaded = read_fmb(path, VC709)
    assert loaded == binary
    prog = loaded.program("main")
    assert prog.bundles[-1].op_in("CTL").op == "ctl.halt"
    assert any("mamba.linear tile 0" in text for text in prog.debug.values())
    assert all(prog.bundles[i].ops for i in prog.debug)
    backend = SimulatorBackend(VC709)
    backend.load(path)
    a = np.random.default_rng(2).integers(-128, 128, (M, K), dtype=np.int8)
    result = backend.run("main", {"a": a})
    c = result.outputs["c"].transpose(1, 0, 2).reshape(M, N)
    w = np.frombuffer(image, np.int8).reshape(N, K)
    assert np.array_equal(c, a.astype(np.int64) @ w.astype(np.int64).T)
    assert result.stats.stalls["semaphore"] == 0


def test_debug_text_lands_on_the_bundle_of_its_op():
    module, image = matmul_module()
    ScheduleVliwPass().apply(Context(), module)
    prog = emit_binary(module, VC709, image).program("main")
    for index, text in prog.debug.items():
        for part in text.split("; "):
            kind = part.split()[0]
            slots = {o.slot for o in prog.bundles[index].ops}
            assert {"load": "LD", "store": "ST", "mamba.linear": "LIN"}[kind] in slots


def test_unscheduled_program_is_refused():
    module, image = matmul_module()
    with pytest.raises(InputError, match="not scheduled"):
        emit_binary(module, VC709, image)
