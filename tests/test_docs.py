"""The generated docs (docs/ISA.md, docs/FMB.md) match the tables they are generated from (isa.docgen)."""

from __future__ import annotations

import fastmamba.isa.instructions as instructions
from fastmamba.isa import container, docgen
from fastmamba.isa.assembler import assemble


def test_committed_docs_are_current():
    for path, text in docgen.outputs().items():
        assert path.exists(), f"{path.name} is missing: run `{docgen.REGENERATE}`"
        assert path.read_text(encoding="utf-8") == text, f"{path.name} is stale: run `{docgen.REGENERATE}`"


def test_isa_doc_covers_every_op_and_field():
    text = docgen.render_isa()
    for spec in instructions.OPS.values():
        assert f"### {spec.name}\n" in text and f"`{spec.opcode:#04x}`" in text
        for f in spec.fields:
            assert f"| `{f.name}` |" in text
            for v in f.values:
                assert f"`{v}`=" in text
    for slot in instructions.SLOTS:
        assert f"`{slot}`" in text


def test_fmb_doc_covers_every_record():
    text = docgen.render_fmb()
    for rec in container.LAYOUT:
        assert f"({rec.size} bytes)" in text
        for name, _, _ in rec.fields:
            assert f"| `{name}` |" in text


def test_example_assembles():
    binary = assemble(docgen.EXAMPLE, "example.s")
    main = binary.program("main")
    assert [t.name for t in main.tensors] == ["x", "y", "h"]
    assert main.bundles[-1].ops[0].op == "ctl.halt" and main.debug == {0: "wait for DMA"}
    assert binary.const_image[:8] == bytes([1, 254, 3, 252, 5, 250, 7, 248])
