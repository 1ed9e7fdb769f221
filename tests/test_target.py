"""Target configurations: the vc709 preset, overrides from files, validation, digest."""

import json

import pytest

from isa.errors import InputError
from isa.target import PRESETS, Target, load_target


def test_vc709_preset_matches_the_paper():
    t = load_target("vc709")
    assert t.lin_macs_per_cycle == 6 * 64 * 4 == 1536
    assert t.ssm_elems_per_cycle == 32 * 8 == 256
    assert t.conv_channels == 32 and t.conv_kernel_max == 4
    assert t.nla_lanes == 24 and t.nla_bits == 16 and t.nla_segments == 8
    assert t.clock_hz == 250e6
    assert t.dma_bytes_per_cycle == pytest.approx(60.0)  # 15 GB/s at 250 MHz
    assert t.buffer_bytes == 956 * 36 * 1024 // 8 == 4_405_248


def test_toml_override(tmp_path):
    f = tmp_path / "slow.toml"
    f.write_text('ddr_gbytes_per_s = 7.5\nvec_lanes = 32\n')
    t = load_target(str(f))
    assert t.name == "slow" and t.dma_bytes_per_cycle == pytest.approx(30.0) and t.vec_lanes == 32
    assert t.lin_macs_per_cycle == 1536  # the rest is the vc709 preset


def test_json_override(tmp_path):
    f = tmp_path / "big.json"
    f.write_text(json.dumps({"name": "bigbuf", "buffer_bytes": 8 * 1024 * 1024}))
    assert load_target(f).buffer_bytes == 8 * 1024 * 1024


@pytest.mark.parametrize(
    "content, message",
    [
        ("vec_lane = 3\n", "unknown target parameter(s) vec_lane"),
        ("vec_lanes = 0\n", "vec_lanes: must be >= 1"),
        ("vec_lanes = 2.5\n", "vec_lanes: must be an integer"),
        ("hadamard_max_block = 96\n", "hadamard_max_block: must be a power of two"),
        ("clock_mhz = -1\n", "clock_mhz: must be a positive number"),
        ("buffer_bytes = 16777216\n", "buffer_bytes: must be below 2^24"),
        ("vec_lanes = \n", "not valid TOML"),
    ],
)
def test_bad_parameters_are_named(tmp_path, content, message):
    f = tmp_path / "t.toml"
    f.write_text(content)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)").replace("^", r"\^")):
        load_target(str(f))


def test_missing_file_and_unknown_preset(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_target(str(tmp_path / "nope.toml"))
    with pytest.raises(InputError, match="unknown target 'zc706'"):
        load_target("zc706")


def test_digest_identifies_the_configuration():
    base = PRESETS["vc709"]
    assert len(base.digest()) == 32
    assert Target().digest() == base.digest()
    assert Target(dma_latency=65).digest() != base.digest()
