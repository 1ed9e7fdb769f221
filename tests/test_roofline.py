"""The roofline bound (compiler/backend/roofline.py) against the worked examples of docs/ARCHITECTURE.md, with
every term re-derived here by hand from the model shapes and the vc709 numbers."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fastmamba.compiler.backend.roofline import roofline
from fastmamba.compiler.config import Mamba2Config
from fastmamba.isa.target import load_target

VC709 = load_target("vc709")
M130 = Mamba2Config(d_model=768, n_layer=24, vocab_size=50280, d_state=128, headdim=64, expand=2, ngroups=1)
B27 = Mamba2Config(d_model=2560, n_layer=64, vocab_size=50280, d_state=128, headdim=64, expand=2, ngroups=1)
BYTES_PER_CYCLE = 15e9 / 250e6  # 60
BUFFER = 956 * 36 * 1024 // 8  # 4,405,248 bytes


def test_vc709_rates_the_examples_assume():
    assert (VC709.lin_macs_per_cycle, VC709.ssm_elems_per_cycle, VC709.conv_channels) == (1536, 256, 32)
    assert VC709.dma_bytes_per_cycle == BYTES_PER_CYCLE and VC709.buffer_bytes == BUFFER


def test_130m_prefill_64_tokens():
    r = roofline(M130, 64, VC709)
    # one layer: in_proj 768 x (2*1536 + 2*128 + 24) and out_proj 1536 x 768 int8 MACs per token
    layer = 768 * 3352 + 1536 * 768
    assert r.lin == 64 * 24 * layer / 1536 == 3_753_984
    assert r.ssm == 64 * 24 * 24 * 64 * 128 / 256
    assert r.conv == 64 * 24 * (1536 + 2 * 128) / 32
    assert r.ddr == 24 * layer / 60
    assert (r.layers, r.limiter) == (r.lin, "LIN")
    head_bytes = 768 * 50280  # 38.6 MB: does not fit the 4.4 MB buffer
    assert r.head_lin == head_bytes / 1536
    assert r.head_ddr == pytest.approx((head_bytes - BUFFER) / 60) and r.head == r.head_ddr
    assert r.head == pytest.approx(570_163.2)
    assert r.prefill == pytest.approx(3_753_984 + 570_163.2)
    # the worked example: layers ~ 3.75 M cycles (LIN) + head ~ 0.57 M ~ 4.32 M cycles ~ 17 ms at 250 MHz
    assert round(r.layers / 1e6, 2) == 3.75 and round(r.head / 1e6, 2) == 0.57 and round(r.prefill / 1e6, 2) == 4.32
    assert round(r.prefill / 250e6 * 1e3) == 17


def test_27b_decode_tokens_per_s():
    r = roofline(B27, 1, VC709)
    layer = 2560 * (2 * 5120 + 2 * 128 + 80) + 5120 * 2560
    assert r.weight_bytes == 64 * layer and r.head_bytes == 2560 * 50280
    assert round((r.weight_bytes + r.head_bytes) / 1e9, 2) == 2.70
    ssm_state = 2 * 64 * 80 * 64 * 128 * 4  # int32, read and written
    conv_state = 2 * 64 * 3 * (5120 + 2 * 128) * 2  # int16, kernel 4 keeps 3 rows
    assert r.state_bytes == ssm_state + conv_state and round(r.state_bytes / 1e9, 2) == 0.34
    assert r.decode == (64 * layer + 2560 * 50280 + ssm_state + conv_state) / 60
    tokens_per_s = 250e6 / r.decode
    assert round(tokens_per_s, 2) == 4.93
    assert tokens_per_s == pytest.approx(15e9 / 3_040_022_528)


def test_head_inside_the_buffer_costs_only_its_lin_cycles():
    small = Mamba2Config(d_model=256, n_layer=2, vocab_size=256, d_state=16, headdim=32, expand=2, ngroups=1)
    r = roofline(small, 8, VC709)
    assert r.head_bytes == 65536 < BUFFER
    assert r.head_ddr == 0 and r.head == r.head_lin == 65536 / 1536
    assert r.prefill == pytest.approx(r.layers + 65536 / 1536)


def test_a_smaller_buffer_lengthens_the_head_stream():
    tight = replace(VC709, buffer_bytes=1 << 20)
    r, base = roofline(M130, 64, tight), roofline(M130, 64, VC709)
    assert r.head_ddr - base.head_ddr == pytest.approx((BUFFER - (1 << 20)) / 60)
    assert r.layers == base.layers


def test_long_prompts_scale_the_layers_not_the_head():
    short, long = roofline(M130, 64, VC709), roofline(M130, 256, VC709)
    assert long.lin == 4 * short.lin and long.head == short.head
