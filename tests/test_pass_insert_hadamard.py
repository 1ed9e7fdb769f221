"""insert-hadamard (passes/insert_hadamard.py): IR shape, FP32 exactness of the rotation, bad block sizes."""

from __future__ import annotations

import numpy as np
import pytest

from fastmamba.compiler.interpreters.mamba_quant import run_function
from fastmamba.compiler.pipeline import parse_ir, print_ir, run_pipeline
from fastmamba.compiler.quant.hadamard import default_block, rotate_blocks, sylvester
from fastmamba.isa.errors import InputError

IR = """
builtin.module {
  func.func @f(%x: tensor<5x768xf32>) -> (tensor<5x64xf32>, tensor<5x16xf32>) {
    %w = mamba.weight "a.weight" : tensor<1536x768xf32>
    %v = mamba.weight "b.weight" : tensor<64x1536xf32>
    %h = mamba.linear %x, %w : (tensor<5x768xf32>, tensor<1536x768xf32>) -> tensor<5x1536xf32>
    %y = mamba.linear %h, %v : (tensor<5x1536xf32>, tensor<64x1536xf32>) -> tensor<5x64xf32>
    %e = mamba.weight "head.weight" : tensor<16x64xf32>
    %l = mamba.lm_head %y, %e : (tensor<5x64xf32>, tensor<16x64xf32>) -> tensor<5x16xf32>
    func.return %y, %l : tensor<5x64xf32>, tensor<5x16xf32>
  }
}
"""


def _weights(outlier: bool = True) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"a.weight": (rng.standard_normal((1536, 768)) / 28).astype(np.float32),
            "b.weight": (rng.standard_normal((64, 1536)) / 40).astype(np.float32),
            "head.weight": rng.standard_normal((16, 64)).astype(np.float32)}


def _x(outlier: bool = True) -> np.ndarray:
    x = np.random.default_rng(1).standard_normal((5, 768)).astype(np.float32)
    if outlier:
        x[:, 7] *= 100.0
    return x


def test_sylvester_matrix_is_a_hadamard_matrix():
    for b in (1, 2, 4, 64, 256):
        h = sylvester(b)
        assert set(np.unique(h)) <= {-1, 1}
        assert np.array_equal(h @ h.T, b * np.eye(b, dtype=np.int64))
    assert np.array_equal(sylvester(4), [[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]])
    assert default_block(768, 256) == 256 and default_block(1536, 256) == 256 and default_block(24, 256) == 8


@pytest.mark.parametrize("block", [0, 64, 256])
def test_rotation_keeps_fp32_outputs_within_1e_5(block):
    before = run_function(parse_ir(IR), _weights(), "f", _x())
    module = run_pipeline(parse_ir(IR), f"set-target,insert-hadamard{{block={block}}}")
    text = print_ir(module)
    b = block or 256
    assert text.count("mamba_quant.hadamard") == 2 and text.count("mamba_quant.rotate_columns") == 2
    assert text.count(f"block = {b} : i64") == 4
    assert "mamba.lm_head %y, %e" in text  # the head is not rotated
    after = run_function(module, _weights(), "f", _x())
    for x, y in zip(before, after):
        assert np.abs(x - y).max() / np.abs(x).max() < 1e-5
    # Idempotent.
    assert print_ir(run_pipeline(parse_ir(text), f"set-target,insert-hadamard{{block={block}}}")) == text


def test_head_option_rotates_the_lm_head_too():
    before = run_function(parse_ir(IR), _weights(), "f", _x())
    module = run_pipeline(parse_ir(IR), "set-target,insert-hadamard{head=true}")
    text = print_ir(module)
    assert text.count("mamba_quant.hadamard") == 3 and text.count("mamba_quant.rotate_columns") == 3
    assert "mamba.lm_head %y, %e" not in text and text.count("block = 64 : i64") == 2  # the head's width 64
    after = run_function(module, _weights(), "f", _x())
    for x, y in zip(before, after):
        assert np.abs(x - y).max() / np.abs(x).max() < 1e-5
    assert print_ir(run_pipeline(parse_ir(text), "set-target,insert-hadamard{head=true}")) == text


def test_rotation_spreads_an_outlier_channel():
    x = _x()
    r = rotate_blocks(x, 256)
    ratio = lambda a: np.abs(a).max(0).max() / np.median(np.abs(a).max(0))  # noqa: E731
    assert ratio(x) > 50 and ratio(r) < 10
    # Orthonormal: norms preserved.
    assert np.allclose(np.linalg.norm(r, axis=1), np.linalg.norm(x, axis=1), rtol=1e-5)


@pytest.mark.parametrize("spec,message", [
    ("set-target,insert-hadamard{block=3}", "power of two"),
    ("set-target,insert-hadamard{block=512}", "does not divide the dimension 768"),
    ("set-target{target=\"vc709\"},insert-hadamard{block=128}", None),
    ("insert-hadamard{block=128}", r"insert-hadamard: the module has no target .*run set-target"),
])
def test_bad_block_sizes_are_input_errors(spec, message):
    if message is None:
        assert "block = 128" in print_ir(run_pipeline(parse_ir(IR), spec))
        return
    with pytest.raises(InputError, match=message):
        run_pipeline(parse_ir(IR), spec)


def test_block_above_the_target_limit(tmp_path):
    small = tmp_path / "small.toml"
    small.write_text("hadamard_max_block = 64\n")
    with pytest.raises(InputError, match="hadamard_max_block 64"):
        run_pipeline(parse_ir(IR), f'set-target{{target="{small}"}},insert-hadamard{{block=256}}')
    assert "block = 64 : i64" in print_ir(run_pipeline(parse_ir(IR), f'set-target{{target="{small}"}},insert-hadamard'))


def test_verifier_rejects_a_block_not_dividing_the_width():
    bad = IR.replace('%h = mamba.linear %x, %w',
                     '%xr = mamba_quant.hadamard %x {block = 512 : i64} : tensor<5x768xf32> -> tensor<5x768xf32>\n    '
                     '%h = mamba.linear %xr, %w')
    with pytest.raises(InputError, match="does not divide"):
        parse_ir(bad)


def test_cli_bad_block_is_one_line(tmp_path, capsys):
    from fastmamba.compiler.cli import main

    path = tmp_path / "in.mlir"
    path.write_text(IR)
    assert main(["opt", str(path), "-p", "set-target,insert-hadamard{block=3}"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "power of two" in err
