"""Compiling for the `small` target (64 KiB buffer, the RTL's): models fit its buffer and run bit exact.

Place in the flow: tests of lower-to-accel's compact mapping (compiler/backend/lowering.py `_fit`: weight
tiles down to the LIN unit's tree count, a head's SSM state in parts of its head dimension, a fused front's
conv operands loaded one chunk ahead), of compiler.compile.default_seq_len and of `fastmamba run` on
the result: the bundled model and random transformers configs, each run through prefill chunks and decode
with --check against the golden model on the simulator.
"""

from __future__ import annotations

import json

import pytest

from fastmamba.compiler.cli import main
from fastmamba.compiler.checkpoint import DEFAULT_MODEL_DIR, read_config
from fastmamba.compiler.compile import DEFAULT_SEQ_LEN, default_seq_len, max_seq_len
from fastmamba.isa.container import read_fmb
from fastmamba.isa.target import PRESETS, SMALL

PROMPT = "ROMEO: But soft"  # 15 bytes: prefill chunks, then the remainder token by token through decode


def _run_json(capsys, fmb, *extra) -> dict:
    capsys.readouterr()
    code = main(["run", str(fmb), "--prompt", PROMPT, "--greedy", "--check", "--json", *map(str, extra)])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def test_default_seq_len_follows_the_buffer():
    config = read_config(DEFAULT_MODEL_DIR)[0]
    assert default_seq_len(config, PRESETS["vc709"]) == DEFAULT_SEQ_LEN == 64
    # the gate's tensors: 10 * 512 + 4 * 256 = 6144 bytes a token; half of 64 KiB holds 5 -> the power of two 4
    assert default_seq_len(config, SMALL) == 4 <= max_seq_len(config, SMALL)
    tiny = SMALL.__class__(**{**SMALL.to_dict(), "buffer_bytes": 4096})
    assert default_seq_len(config, tiny) == 1


def test_bundled_model_on_small(tmp_path_factory, capsys):
    """`fastmamba compile --target small` of the bundled model (no --seq-len), then run --check: bit exact."""
    from small_models import bundled_small

    fmb = bundled_small(tmp_path_factory)
    binary = read_fmb(fmb)
    meta = json.loads(binary.meta)
    assert meta["seq_len"] == 4 and meta["target"] == "small"
    config = read_config(DEFAULT_MODEL_DIR)[0]
    for prog in binary.programs:
        ssm = [op for b in prog.bundles for op in b.ops if op.op == "ssm"]
        # the compact mapping: one head's state (headdim x d_state int32 = 8 KiB) streamed in halves
        assert {int(op["p"]) for op in ssm} == {config.headdim // 2}
        assert len(ssm) == config.n_layer * config.nheads * 2
    doc = _run_json(capsys, fmb, "--max-new-tokens", 3, "--target", "small")
    assert doc["bit_exact"] is True and doc["runs_checked"] == 3 + 3 + 2
    assert doc["prefill"]["programs"] == {"prefill": 3, "decode": 3} and doc["decode"]["programs"] == {"decode": 2}
    assert "rtl_cycles" not in doc["prefill"]


@pytest.mark.parametrize("name, overrides, ssm_p", [
    ("groups2", {"d_conv": 2}, None),  # ngroups 2, expand 2, d_conv 2
    ("expand3_k3", {"vocab_size": 256}, None),  # ngroups 1, expand 3, d_conv 3 (a byte vocabulary: no tokenizer)
    # a head's state is 8 KiB: the compact mapping streams it in halves
    ("tiny", {"d_model": 128, "d_state": 64, "headdim": 32, "ngroups": 2}, 16),
])
def test_random_configs_on_small(name, overrides, ssm_p, tmp_path, capsys):
    from model_factory import make_config, random_hf_model, save_hf_dir

    config = make_config(name, n_layer=1, **overrides)
    model = save_hf_dir(random_hf_model(config, seed=3), tmp_path / "model")
    fmb = tmp_path / "m.fmb"
    assert main(["compile", "--model", str(model), "--target", "small", "--calibration", "random",
                 "--calibration-windows", "1", "-o", str(fmb)]) == 0
    binary = read_fmb(fmb)
    seq_len = json.loads(binary.meta)["seq_len"]
    assert seq_len == default_seq_len(config, SMALL)
    ps = {int(op["p"]) for prog in binary.programs for b in prog.bundles for op in b.ops if op.op == "ssm"}
    assert ps == {ssm_p or config.headdim}
    doc = _run_json(capsys, fmb, "--max-new-tokens", 2)
    assert doc["bit_exact"] is True and len(doc["tokens"]) == 2
    full = len(PROMPT) // seq_len
    assert doc["prefill"]["programs"].get("prefill", 0) == full
