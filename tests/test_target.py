"""Target configurations: the vc709 preset, overrides from files, validation, digest."""

import dataclasses
import hashlib
import json

import pytest

from fastmamba.isa.errors import InputError
from fastmamba.isa.target import PRESETS, Target, load_target


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


def test_name_defaults_to_the_file_name(tmp_path):
    f = tmp_path / "my board.v2.toml"
    f.write_text('base = "vc709"\n')
    assert load_target(f).name == "my_board_v2"


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
        ("buffer_bytes = 16777216\n", "buffer_bytes: must be below 16777216 (BUF addresses)"),
        ("ddr_bytes = 1099511627776\n", "ddr_bytes: must be below 1099511627776 (DDR addresses)"),
        ("semaphores = 256\n", "semaphores: at most 255"),
        ("nla_bits = 32\n", "nla_bits: at most 24"),
        ("nla_bits = 4\n", "nla_bits: at least 8"),
        ("nla_bits = 8\nnla_segments = 256\n", "nla_segments: at most 2^(nla_bits - 1) = 128"),
        ("nla_segments = 6\n", "nla_segments: must be a power of two"),
        ("ssm_state_bits = 20\n", "ssm_state_bits: one of 16, 24, 32"),
        ("conv_kernel_max = 1\n", "conv_kernel_max: at least 2"),
        ("conv_kernel_max = 16\n", "conv_kernel_max: at most 15"),
        ("vec_stages = 5\n", "vec_stages: at most 4 (one stage per micro-op field at most)"),
        ("vec_stages = 0\n", "vec_stages: must be >= 1"),
        ("hadamard_max_block = 65536\n", "hadamard_max_block: at most 32768"),
        ("lin_latency = -1\n", "lin_latency: must be >= 0"),
        ("semaphores = true\n", "semaphores: must be an integer"),
        ("ddr_gbytes_per_s = nan\n", "ddr_gbytes_per_s: must be a positive number"),
        ("ddr_gbytes_per_s = inf\n", "ddr_gbytes_per_s: must be a positive number"),
        ('name = "my board"\n', "name: must be a non-empty identifier"),
        ('base = "zc706"\n', "unknown base preset 'zc706'"),
        ("base = [1]\n", r"unknown base preset \[1\]"),
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
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(InputError, match="cannot read target file"):
        load_target(str(tmp_path / "dir.json"))
    bad = tmp_path / "list.json"
    bad.write_text("[1, 2]")
    with pytest.raises(InputError, match="expected a table of parameters"):
        load_target(bad)
    bad.write_text("{")
    with pytest.raises(InputError, match="not valid JSON"):
        load_target(bad)


def test_errors_are_one_line(tmp_path):
    f = tmp_path / "t.toml"
    f.write_text("vec_lane = 3\nnla_bits = 40\n")
    with pytest.raises(InputError) as info:
        load_target(f)
    assert "\n" not in str(info.value)


def valid_change(base, name, value):
    """Another valid value of one parameter."""
    if name == "name":
        return "other"
    for candidate in (value + 1, value // 2, value - 8):
        try:
            dataclasses.replace(base, **{name: candidate})
            return candidate
        except InputError:
            continue
    raise AssertionError(name)


def test_digest_identifies_the_configuration():
    base = PRESETS["vc709"]
    assert len(base.digest()) == 32
    assert Target().digest() == base.digest()
    # every parameter is part of the identity
    digests = {base.digest()}
    for name, value in base.to_dict().items():
        digests.add(dataclasses.replace(base, **{name: valid_change(base, name, value)}).digest())
    assert len(digests) == len(base.to_dict()) + 1
    # the digest is sha256 of the canonical JSON of to_dict(); an integer written for a float parameter is the same
    canonical = json.dumps(base.to_dict(), sort_keys=True, separators=(",", ":")).encode()
    assert base.digest() == hashlib.sha256(canonical).digest()
    assert Target(clock_mhz=250).digest() == base.digest()


def test_to_dict_round_trips_through_a_json_file(tmp_path):
    t = dataclasses.replace(PRESETS["vc709"], name="custom", vec_lanes=16, ssm_state_bits=16, nla_bits=12)
    f = tmp_path / "custom.json"
    f.write_text(json.dumps(t.to_dict()))
    assert load_target(f) == t and load_target(t) is t


def test_every_parameter_in_the_contract():
    names = {f.name for f in dataclasses.fields(Target)}
    assert names == {
        "name", "clock_mhz", "buffer_bytes", "ddr_bytes", "ddr_gbytes_per_s", "dma_latency", "dma_queue_depth",
        "dma_row_bursts", "semaphores", "lin_groups", "lin_hadamard_trees", "lin_mac_trees", "lin_mac_tree_width",
        "lin_latency", "lin_row_tiles",
        "hadamard_max_block", "conv_channels", "conv_kernel_max", "conv_latency", "conv_row_tiles", "ssm_head_tiles",
        "ssm_headdim_lanes",
        "ssm_dstate_lanes", "ssm_state_bits", "ssm_latency", "nla_lanes", "nla_bits", "nla_segments", "vec_lanes",
        "vec_latency", "vec_row_tiles", "vec_stages"}
    t = PRESETS["vc709"]
    assert t.ddr_bytes == 8 * 2**30 and t.ddr_gbytes_per_s == 15.0 and t.semaphores == 32
    assert t.hadamard_max_block == 256 and 768 % 256 == 0 and 1536 % 256 == 0
