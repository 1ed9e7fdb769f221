"""lower-to-accel, plan-memory and the emitter: quantized IR -> scheduled binary -> simulator, bit for bit.

The IR of small random models goes through the quantization passes; the body
without the head (which needs assign-scales{head="int8"}, covered end to end
by the compile tests) is lowered, planned, scheduled, packed and simulated,
and every output and final state must equal what the `mamba_quant`
interpreter computes from the same IR.  Failure cases: unsupported ops, IR
the units cannot take, a buffer that does not fit.
"""

from __future__ import annotations

import numpy as np
import pytest
from xdsl.dialects import func
from xdsl.dialects.builtin import FunctionType, IntegerAttr, ModuleOp, StringAttr, i64

from fastmamba.compiler.backend.constants import build_image, pack_block
from fastmamba.compiler.backend.emit import emit_binary
from fastmamba.compiler.backend.lowering import BUFFERS_ATTR, MEM_ATTR
from fastmamba.compiler.backend.memory import plan_memory
from fastmamba.compiler.checkpoint import load_model
from fastmamba.compiler.dialects import mamba
from fastmamba.compiler.dialects.accel import ProgramOp, instruction_of, op_of
from fastmamba.compiler.frontend.importer import import_model
from fastmamba.compiler.interpreters.mamba_quant import run_function
from fastmamba.compiler.pipeline import parse_ir, print_ir, run_pipeline
from fastmamba.compiler.weights import NumpyWeights
from fastmamba.isa.container import TensorDesc
from fastmamba.isa.errors import FastmambaError
from fastmamba.isa.instructions import Instruction
from fastmamba.isa.target import Target, load_target
from model_factory import make_config, random_hf_model
from fastmamba.passes.calibrate import calibrate_module
from fastmamba.simulator.runtime import SimulatorBackend

VC709 = load_target("vc709")


def quantized(name: str, length: int, seed: int = 3, n_layer: int = 2, windows: int = 4, **overrides):
    hf = random_hf_model(make_config(name, n_layer=n_layer, **overrides), seed=seed)
    config, store = load_model(hf)
    weights = NumpyWeights(store)
    module = import_model(hf, "prefill", length).module
    tokens = np.random.default_rng(seed).integers(0, config.vocab_size, (windows + 1) * length)
    run_pipeline(module, "set-target,fold-norm-weights,insert-hadamard{block=0},dce")
    calibrate_module(module, weights, tokens, windows=windows)
    run_pipeline(module, "assign-scales,approximate-nonlinear,fuse-elementwise")
    return config, weights, module, tokens[windows * length:]


def drop_head(module: ModuleOp) -> None:
    """Return the head's (normalized, last-position) input instead of the logits."""
    fn = next(o for o in module.body.block.ops if isinstance(o, func.FuncOp))
    head = next(o for o in fn.body.block.ops if isinstance(o, mamba.LMHeadOp))
    head.result.replace_all_uses_with(head.operands[0])
    head.detach()
    head.erase()
    ret = fn.body.block.last_op
    fn.function_type = FunctionType.from_lists([a.type for a in fn.args], [o.type for o in ret.operands])


def simulate(module: ModuleOp, weights, ids, target=VC709, states=None):
    image = build_image(module, weights, target)
    binary = emit_binary(module, target, image)
    backend = SimulatorBackend(target)
    backend.load(binary)
    prog = binary.program("prefill")
    inputs = {"tokens": np.asarray(ids, np.int32)}
    for t in prog.tensors:
        if t.role == "state":
            inputs[t.name] = np.zeros(t.shape, np.int16 if t.dtype == "i16" else np.int32)
    inputs.update(states or {})
    return prog, backend.run("prefill", inputs)


@pytest.mark.parametrize("name,length", [("tiny", 12), ("groups2", 7), ("expand3_k3", 5), ("groups4_k2", 9)])
def test_simulated_program_equals_the_interpreter(name, length):
    config, weights, module, ids = quantized(name, length)
    drop_head(module)
    ref = run_function(module, weights, "prefill", ids)
    run_pipeline(module, "lower-to-accel,plan-memory,schedule-vliw")
    text = print_ir(module)
    assert "accel.lin" in text and "accel.ssm" in text and "accel.conv" in text and "accel.ldg" in text
    names = {op.name for op in module.walk()}
    assert not names & {"mamba_quant.qlinear", "mamba_quant.qssm_scan", "mamba.embedding"}  # lowered
    assert MEM_ATTR + " =" not in text  # and planned
    prog, result = simulate(module, weights, ids)
    assert_equals_interpreter(prog, result, ref, config.n_layer)
    assert result.outputs["next_token"][0] == int(np.argmax(ref[0][0]))


def assert_equals_interpreter(prog, result, ref, n_layer: int) -> None:
    """The simulated outputs and final states equal the interpreter's `ref` (logits, then conv and SSM state of
    each layer, as real values) bit for bit."""
    assert np.array_equal(result.outputs["logits"], ref[0])
    descs = {t.name: t for t in prog.tensors}
    for i in range(n_layer):
        conv, ssm = result.states[f"layers.{i}.conv"], result.states[f"layers.{i}.ssm"]
        assert np.array_equal(np.ldexp(conv.T.astype(np.float32), descs[f"layers.{i}.conv"].exp), ref[1 + 2 * i])
        assert np.array_equal(np.ldexp(ssm.astype(np.float32), descs[f"layers.{i}.ssm"].exp), ref[2 + 2 * i])


def test_small_tiles_and_chunks_give_the_same_result():
    """Many weight tiles (prefetch 1) and one-head state chunks compute exactly what one tile would."""
    _, weights, module, ids = quantized("groups2", 6)
    drop_head(module)
    other = parse_ir(print_ir(module))
    unfused = parse_ir(print_ir(module))
    run_pipeline(module, "lower-to-accel,plan-memory,schedule-vliw")
    run_pipeline(other, "lower-to-accel{tile_kib=1 prefetch=1},plan-memory,schedule-vliw")
    run_pipeline(unfused, "lower-to-accel{fuse_front=false},plan-memory,schedule-vliw")
    assert print_ir(other).count("accel.lin ") > print_ir(module).count("accel.lin ")
    assert print_ir(other).count("accel.ssm ") > print_ir(module).count("accel.ssm ")
    assert print_ir(module).count("accel.conv ") > print_ir(unfused).count("accel.conv ") == 2  # per channel range
    _, a = simulate(module, weights, ids)
    for variant in (other, unfused):
        _, b = simulate(variant, weights, ids)
        assert np.array_equal(a.outputs["logits"], b.outputs["logits"])
        for key in a.states:
            assert np.array_equal(a.states[key], b.states[key])


def test_fused_front_starts_the_scan_before_in_proj_ends():
    """With the fused front, a layer's first SSM op comes before its in_proj's last tiles (B|C, dt and the
    first x chunk are computed first); op by op, every SSM op follows every in_proj tile."""
    _, _, module, _ = quantized("tiny", 12, n_layer=1)
    drop_head(module)
    unfused = parse_ir(print_ir(module))
    run_pipeline(module, "lower-to-accel{tile_kib=4}")
    run_pipeline(unfused, "lower-to-accel{tile_kib=4 fuse_front=false}")
    for mod, before in ((module, True), (unfused, False)):
        ops = [(o.name,
                o.debug_text or "") for o in next(p for p in mod.walk() if isinstance(p, ProgramOp)).body.block.ops]
        first_ssm = next(n for n, (name, _) in enumerate(ops) if name == "accel.ssm")
        last_in_proj = max(n for n, (name, d) in enumerate(ops) if name == "accel.lin" and "in_proj" in d)
        assert (first_ssm < last_in_proj) == before


def test_states_carry_from_run_to_run():
    """A second run from the first run's DDR states differs from one from zero states, and is deterministic."""
    _, weights, short, _ = quantized("tiny", 4, n_layer=1)
    ids = np.random.default_rng(0).integers(0, 256, 8)
    drop_head(short)
    run_pipeline(short, "lower-to-accel,plan-memory,schedule-vliw")
    _, first = simulate(short, weights, ids[:4])
    _, second = simulate(short, weights, ids[4:8], states=first.states)
    _, again = simulate(short, weights, ids[4:8], states=first.states)
    assert np.array_equal(second.outputs["logits"], again.outputs["logits"])
    zero = simulate(short, weights, ids[4:8])[1]
    assert not all(np.array_equal(second.states[k], zero.states[k]) for k in second.states)  # the carry matters


def test_f32_head_is_refused_with_a_hint():
    _, _, module, _ = quantized("tiny", 4, n_layer=1)
    with pytest.raises(FastmambaError, match=r"mamba.lm_head is not supported.*head=\\?\"int8"):
        run_pipeline(module, "lower-to-accel")


def test_unquantized_ir_is_refused_naming_the_op():
    """The pipeline's level check names the op and the pass that must run first (pipeline.NEEDS)."""
    hf = random_hf_model(make_config("tiny", n_layer=1), seed=1)
    module = import_model(hf, "prefill", 4).module
    with pytest.raises(FastmambaError, match=r"lower-to-accel: the IR holds mamba\.\w+: run assign-scales first"):
        run_pipeline(module, "set-target,lower-to-accel")


def test_a_buffer_that_does_not_fit_names_the_tensor(tmp_path):
    _, _, module, _ = quantized("tiny", 12, n_layer=1)
    drop_head(module)
    run_pipeline(module, "lower-to-accel")
    small = Target(buffer_bytes=4096)
    with pytest.raises(FastmambaError,
                       match=r"tensor prefill\.\S+ \(\d+ bytes.*does not fit the on-chip buffer of 4096"):
        plan_memory(module, small)


def _program(name: str, ops, buffers: dict[str, int], consts=()) -> ProgramOp:
    from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr

    program = ProgramOp(name, 0, (TensorDesc("x", "input", 0, (16,), "i8"),), ops)
    program.attributes[BUFFERS_ATTR] = DictionaryAttr({k: IntegerAttr(v, i64) for k, v in buffers.items()})
    program.attributes["consts"] = ArrayAttr([DictionaryAttr({"name": StringAttr(c), "kind": StringAttr("array"),
                                                              "bytes": IntegerAttr(n, i64)}) for c, n in consts])
    return program


def _ref(text: str):
    """A block reference in the tests' short form: b:NAME, c:NAME, t:NAME."""
    from fastmamba.compiler.dialects.accel import buf_ref, const_ref, tensor_ref

    kind, _, name = text.partition(":")
    return {"b": buf_ref, "c": const_ref, "t": tensor_ref}[kind](name)


def _with_mem(op, **fields: str):
    from xdsl.dialects.builtin import DictionaryAttr

    op.properties[MEM_ATTR] = DictionaryAttr({k: _ref(v) for k, v in fields.items()})
    return op


def _ld(buf: str, ddr: str, nbytes: int = 16):
    op = op_of(Instruction("ld", dict(buf=0, ddr=0, rows=1, row_bytes=nbytes, ddr_stride=nbytes, buf_stride=nbytes,
                                      sem=0)))
    return _with_mem(op, buf=buf, ddr=ddr)


def test_plan_memory_reuses_dead_buffers_and_shares_constants():
    a = _program("a", [_ld("b:one", "c:w"), _ld("b:one", "t:x"), _ld("b:two", "c:v")], {"one": 100, "two": 100},
                 [("w", 16), ("v", 16)])
    b = _program("b", [_ld("b:three", "c:w")], {"three": 10}, [("w", 16)])
    module = ModuleOp([a, b])
    plan = plan_memory(module, VC709, lookahead=-1)  # the program order as written
    assert plan.const_ddr == {"w": 0, "v": 64} and plan.image_bytes == 128
    ins = [instruction_of(o) for o in a.body.block.ops]
    assert [i["buf"] for i in ins] == [0, 0, 0]  # "one" is dead when "two" is born: same place
    assert ins[1]["ddr"] == 128 and a.tensor_descs[0].ddr == 128  # tensors after the image
    assert instruction_of(next(iter(b.body.block.ops)))["ddr"] == 0  # the shared constant
    first = a.body.block.first_op
    assert MEM_ATTR not in first.properties and MEM_ATTR not in first.attributes and BUFFERS_ATTR not in a.attributes


def test_plan_memory_rejects_unknown_blocks():
    module = ModuleOp([_program("a", [_ld("b:ghost", "c:w")], {}, [("w", 16)])])
    with pytest.raises(FastmambaError, match="undeclared buffers: ghost"):
        plan_memory(module, VC709)
    module = ModuleOp([_program("a", [_ld("b:one", "t:ghost")], {"one": 16}, [])])
    with pytest.raises(FastmambaError, match="field ddr names unknown tensor block 'ghost'"):
        plan_memory(module, VC709)


def test_mem_references_are_typed_and_verified():
    """Each address field's block is an #accel.mem<space, "name"> that prints and parses back; the verifier
    refuses a reference from a field that is not an address field, or into the other memory."""
    from xdsl.utils.exceptions import VerifyException

    program = _program("a", [_ld("b:one", "c:w")], {"one": 16}, [("w", 16)])
    text = print_ir(ModuleOp([program]))
    assert 'mem = {buf = #accel.mem<buf, "one">, ddr = #accel.mem<const, "w">}' in text
    assert print_ir(parse_ir(text)) == text
    for fields, message in (({"buf": "b:one", "rows": "b:x"}, "mem names rows, not an address field"),
                            ({"buf": "t:x", "ddr": "c:w"}, "field buf addresses buf, mem puts it in tensor block 'x'"),
                            ({"buf": "b:one", "ddr": "b:w"}, "field ddr addresses ddr, mem puts it in buf block 'w'")):
        op = _with_mem(_ld("b:one", "c:w"), **fields)
        with pytest.raises(VerifyException, match=message):
            op.verify()


def test_lin_tile_packing_matches_the_qlinear_rescale():
    wq = np.array([[1, -2, 3], [4, 5, -6], [7, 8, 9]])
    wscale = np.array([0.5, 0.25, 0.125], np.float32)
    data = pack_block("lin_tile", [wq, wscale], {"rows": [1, 3], "act_scale": 0.1})
    assert data[:6] == np.array([4, 5, -6, 7, 8, 9], np.int8).tobytes() and data[6:8] == b"\0\0"
    want = (np.float64(0.1) * wscale[1:].astype(np.float64)).astype(np.float32)
    assert np.frombuffer(data[8:], "<f4").tolist() == want.tolist()
    conv = pack_block("conv_w", [np.arange(6).reshape(3, 1, 2)], {})
    assert np.frombuffer(conv, "<i2").tolist() == [0, 2, 4, 1, 3, 5]
    conv = pack_block("conv_w", [np.arange(6).reshape(3, 1, 2)], {"rows": [1, 3]})  # channels 1 and 2
    assert np.frombuffer(conv, "<i2").tolist() == [2, 4, 3, 5]
    bias = pack_block("array", [np.array([7, 8, 9])], {"dtype": "i32", "rows": [2, 3]})
    assert np.frombuffer(bias, "<i4").tolist() == [9]


def test_plan_memory_keeps_a_buffer_until_its_last_reader_completes():
    """`one`'s last reader (a long vec) still runs when the next vec, issued as soon as the unit is free,
    writes `two`: giving `two` one's dead space would make it wait for that reader; plan-memory does not."""
    from test_schedule_vliw import vec

    def vec_op(a: str, dst: str, rows: int, cols: int):
        return _with_mem(op_of(vec(0, 0, rows, cols)), a=a, dst=dst)

    ops = [_ld("b:one", "c:w", 4096), _ld("b:four", "c:v", 16), vec_op("b:one", "b:three", 64, 64),
           vec_op("b:four", "b:two", 1, 16)]
    program = _program("p", ops, {"one": 4096, "two": 4096, "three": 4096, "four": 16}, [("w", 4096), ("v", 16)])
    plan_memory(ModuleOp([program]), VC709)
    base = {}
    for op in program.body.block.ops:
        instr = instruction_of(op)
        if instr.op == "vec":
            base.setdefault("one" if instr["rows"] == 64 else "four", instr["a"])
            base.setdefault("three" if instr["rows"] == 64 else "two", instr["dst"])
    assert not base["one"] <= base["two"] < base["one"] + 4096 and not base["two"] <= base["one"] < base["two"] + 4096


def test_programs_tile_alike_and_share_constant_blocks():
    """A long prefill needs smaller automatic tiles than the one-token step; both take the smaller, so
    every constant block (weight tiles, per-range conv taps) is one block of the image both programs read."""
    from fastmamba.compiler.backend.lowering import LoweringOptions, lower_functions

    wide = dict(n_layer=1, d_model=256, headdim=32, d_state=32)  # in_proj tiles narrower than its slices
    _, _, long, _ = quantized("tiny", 64, **wide)
    _, _, short, _ = quantized("tiny", 1, **wide)
    fns = []
    for module, name in ((long, "prefill"), (short, "decode")):
        drop_head(module)
        fn = next(o for o in module.body.block.ops if isinstance(o, func.FuncOp))
        fn.sym_name = StringAttr(name)
        fn.detach()
        fns.append(fn)
    target = Target(buffer_bytes=512 * 1024)  # the prefill's activations halve its tiles, the step's do not
    options = LoweringOptions(tile_bytes=target.buffer_bytes // 16)
    alone = [lower_functions([fn], target, options, auto_tile=True)[0][0] for fn in fns]
    together = [program for program, _ in lower_functions(fns, target, options, auto_tile=True)]

    def blocks(program):  # constant block name -> bytes
        return {c.data["name"].data: c.data["bytes"].value.data for c in program.attributes["consts"].data}
    assert blocks(alone[0]) != blocks(alone[1])
    assert blocks(together[0]) == blocks(together[1]) == blocks(alone[0])
