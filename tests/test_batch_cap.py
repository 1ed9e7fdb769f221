"""`fastmamba compile --batch B` is capped by what the target holds, checked before the long work.

The cap is recomputed here from the model's shape: on `small` (16 MiB of DDR) the bundled model's
sequences each need their int16 conv and int32 SSM states and a row of f32 logits in DDR beside a
constant image of at least the int8 weights and the f32 embedding table; on vc709 the buffer's rows bind.
"""

from __future__ import annotations

import pytest

from fastmamba.compiler.checkpoint import load_model
from fastmamba.compiler.cli import main
from fastmamba.compiler.compile import max_batch, max_seq_len
from fastmamba.compiler.config import DEFAULT_MODEL_DIR
from fastmamba.isa.target import load_target


@pytest.fixture
def no_import(monkeypatch):
    from fastmamba.compiler.frontend import importer

    def refuse(*args, **kwargs):
        raise AssertionError("the import started: the batch was not checked up front")

    monkeypatch.setattr(importer, "import_model", refuse)


def test_batch_is_capped_by_the_ddr_of_small(tmp_path, capsys, no_import):
    c, _ = load_model(DEFAULT_MODEL_DIR)
    small = load_target("small")
    states = c.n_layer * ((c.d_conv - 1) * c.conv_dim * 2 + c.nheads * c.headdim * c.d_state * 4)
    layers = c.n_layer * (c.d_model * c.in_proj_out + c.d_inner * c.d_model)
    image = layers + c.d_model * c.vocab_size * (1 + 4)  # int8 head, f32 embedding table
    most = (small.ddr_bytes - image) // (states + 4 * c.vocab_size + 8)
    assert max_batch(c, small)[0] == most == 17
    out = tmp_path / "b.fmb"
    assert main(["compile", "--target", "small", "--batch", str(most + 1), "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"--batch {most + 1} does not fit: at most {most} sequences" in err
    assert f"{small.ddr_bytes}-byte DDR" in err and not out.exists()


def test_batch_is_capped_by_the_buffer_rows_of_vc709(tmp_path, capsys, no_import):
    c, _ = load_model(DEFAULT_MODEL_DIR)
    vc709 = load_target("vc709")
    rows = max_seq_len(c, vc709)
    assert max_batch(c, vc709)[0] == rows
    assert main(["compile", "--batch", str(rows + 1), "-o", str(tmp_path / "b.fmb")]) == 1
    assert f"at most {rows} sequences" in capsys.readouterr().err
