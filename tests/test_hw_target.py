"""The `small` preset (the RTL's fast target) and the per-row DMA burst rule it uses (isa/costs.py)."""

import dataclasses

import pytest

from fastmamba.isa import costs
from fastmamba.isa.errors import InputError
from fastmamba.isa.instructions import Instruction
from fastmamba.isa.target import PRESETS, load_target


def _ld(rows, row_bytes):
    return Instruction("ld", dict(buf=0, ddr=0, rows=rows, row_bytes=row_bytes, ddr_stride=row_bytes,
                                  buf_stride=row_bytes, sem=0))


def test_small_preset_loads_and_differs_only_in_size():
    small = load_target("small")
    assert small is PRESETS["small"] and small.name == "small"
    assert small.buffer_bytes == 64 * 1024 and small.dma_bytes_per_cycle == 16.0 and small.dma_row_bursts == 1
    assert small.digest() != PRESETS["vc709"].digest()
    assert PRESETS["vc709"].dma_row_bursts == 0


def test_row_bursts_charge_each_row_its_own_beats():
    small, vc709 = PRESETS["small"], PRESETS["vc709"]
    ld = _ld(rows=10, row_bytes=20)  # 200 bytes
    assert costs.occupancy(ld, small) == 10 * 2  # ceil(20 / 16) beats per row
    assert costs.occupancy(ld, dataclasses.replace(small, dma_row_bursts=0)) == 13  # ceil(200 / 16)
    assert costs.occupancy(ld, vc709) == 4  # ceil(200 / 60)
    assert costs.occupancy(_ld(rows=3, row_bytes=32), small) == 6 == costs.dma_cycles(96, small)


@pytest.mark.parametrize("value", [2, -1])
def test_row_bursts_is_a_flag(value):
    with pytest.raises(InputError, match="dma_row_bursts"):
        dataclasses.replace(PRESETS["small"], dma_row_bursts=value)
