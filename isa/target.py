"""Target configurations: the accelerator's hardware parameters, one validated record.

Place in the flow: the bottom of `isa/`, read by everything that needs a
hardware fact: the simulator's timing model and unit semantics, the binary
reader's size checks, and the compiler's tiling, memory planning and
scheduling.  Nothing else in fastmamba writes a width, rate or latency as a
literal.

`load_target("vc709")` gives the preset for the paper's board; a path to a
`.toml` or `.json` file gives the vc709 preset with the file's keys
overriding it.  Every parameter is checked; a bad one is an `InputError`
naming it.  `Target.digest()` identifies a configuration inside binaries.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from fastmamba.isa.costs import VEC_MICRO_OP_FIELDS
from fastmamba.isa.errors import InputError
from fastmamba.isa.instructions import OPS


# Ranges the numeric contract (docs/NUMERICS.md) is written for.
NLA_BITS_MIN, NLA_BITS_MAX = 8, 24  # dt < 2^nla_bits times an int32 A must stay below 2^62 with margin
SSM_STATE_BITS = (16, 24, 32)  # the state saturates to this many bits, stored in int32
CONV_KERNEL_MIN = 2
FLAG_PARAMETERS = ("dma_row_bursts", "lin_row_tiles", "conv_row_tiles", "ssm_head_tiles", "vec_row_tiles")  # 0 or 1
POWER_OF_TWO_PARAMETERS = ("hadamard_max_block", "nla_segments", "ssm_headdim_lanes", "ssm_dstate_lanes",
                           "lin_mac_tree_width")


def _is_pow2(v: int) -> bool:
    return v > 0 and v & (v - 1) == 0


MAX_INT_BITS = 64
"""Integer parameters beyond 64 bits are refused before anything else is checked (no field is wider)."""


def _shown(value, limit: int = 60) -> str:
    """`repr(value)` for an error message, cut to `limit` characters (a file can hold a megabyte-long value)."""
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _field_bits(op: str, name: str) -> int:
    return OPS[op].field_map[name].bits


@dataclass(frozen=True)
class Target:
    """Hardware parameters of one accelerator build (vc709 defaults from the FastMamba paper)."""

    name: str = "vc709"
    clock_mhz: float = 250.0
    # Memories.  The on-chip buffer: 956 BRAM36 blocks of 36 Kib = 4,405,248 bytes.
    buffer_bytes: int = 956 * 36 * 1024 // 8
    ddr_bytes: int = 8 * 1024**3  # the VC709's two 4 GB DDR3 SODIMMs
    # DMA: effective DDR bandwidth (estimated from the paper's decode rate), latency, queue.
    ddr_gbytes_per_s: float = 15.0
    dma_latency: int = 64
    dma_queue_depth: int = 8
    # 0: a transfer streams its rows*row_bytes bytes over the channel as one burst,
    # ceil(bytes / dma_bytes_per_cycle) cycles; 1: each row is its own burst of
    # ceil(row_bytes / dma_bytes_per_cycle) beats (the RTL's DMA engines, docs/RTL.md).
    dma_row_bursts: int = 0
    semaphores: int = 32
    # LIN: 6 groups x (4 Hadamard adder trees + requantizer + 64 multiply-add trees of width 4).
    lin_groups: int = 6
    lin_hadamard_trees: int = 4
    lin_mac_trees: int = 64
    lin_mac_tree_width: int = 4
    lin_latency: int = 16
    # 0: LIN occupancy ceil(m*k*n / lin_macs_per_cycle) (the MACs packed over rows and channels);
    # 1: m * ceil(n / (lin_groups*lin_mac_trees)) * ceil(k / lin_mac_tree_width), the RTL's LIN unit
    # (one activation row's W positions broadcast to every tree per cycle; docs/RTL.md).
    lin_row_tiles: int = 0
    # Largest online Hadamard block.  256 divides the 130M model's 768 and 1536 (and
    # 2560/5120 of 2.7B); larger blocks add adder-tree depth for little outlier gain.
    hadamard_max_block: int = 256
    # CONV: 32 multiply-add trees of width 4 (32 channels x kernel 4 per cycle).
    conv_channels: int = 32
    conv_kernel_max: int = 4
    conv_latency: int = 8
    # 0: CONV occupancy ceil(t*c / conv_channels); 1: t * ceil(c / conv_channels), the RTL's CONV unit
    # (one token's block of channels per cycle; docs/RTL.md).
    conv_row_tiles: int = 0
    # SSM: 32 x 8 multiply-add lanes (32 headdim x 8 d_state), 32-bit state.
    ssm_headdim_lanes: int = 32
    ssm_dstate_lanes: int = 8
    ssm_state_bits: int = 32
    ssm_latency: int = 12
    # 0: SSM occupancy t * max(ceil(h*p*n / ssm_elems_per_cycle), ceil(h / nla_lanes)) (the lanes packed over
    # heads); 1: t * h * ceil(p / ssm_headdim_lanes) * ceil(n / ssm_dstate_lanes), the RTL's SSM unit (one
    # head's block of headdim x d_state lanes per cycle; docs/RTL.md).
    ssm_head_tiles: int = 0
    # NLA: 24 lanes of 16-bit fixed-point exp/softplus, an 8-segment first-order table.
    nla_lanes: int = 24
    nla_bits: int = 16
    nla_segments: int = 8
    # VEC: the floating-point group (RMSNorm, SiLU, gating, residual).
    vec_lanes: int = 64
    vec_latency: int = 10
    # 0: VEC occupancy ceil(rows*cols / vec_lanes) (twice with an rmsnorm); 1: the RTL's VEC unit, one row's
    # block of lanes per cycle: rows * ceil(cols / vec_lanes), with an rmsnorm per group of columns and per pass
    # rows * (cols / group) * 2 * ceil(group / vec_lanes) (docs/RTL.md).
    vec_row_tiles: int = 0
    # Micro-op stages in the VEC pipeline: a beat passes through them ceil(k / vec_stages) times for a chain of
    # k micro-ops (at least once), so a beat holds the unit that many cycles.  vc709: one stage per micro-op
    # field (one pass); `small`: one stage that a beat passes through once per micro-op (docs/RTL.md).
    vec_stages: int = len(VEC_MICRO_OP_FIELDS)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "name":
                if not isinstance(value, str) or not value or not value.replace("_", "").replace("-", "").isalnum():
                    raise InputError(f"target parameter name: must be a non-empty identifier, got {_shown(value)}")
                continue
            if f.type == "float":
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf \
                        or isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
                    raise InputError(f"target parameter {f.name}: must be a positive number, got {_shown(value)}")
                object.__setattr__(self, f.name, float(value))
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise InputError(f"target parameter {f.name}: must be an integer, got {_shown(value)}")
            if value.bit_length() > MAX_INT_BITS:  # before any message prints it (str() refuses 4300+ digits)
                raise InputError(f"target parameter {f.name}: out of range, got {_shown(value)}")
            low = 0 if f.name.endswith("_latency") or f.name in FLAG_PARAMETERS else 1
            if f.name in FLAG_PARAMETERS and value > 1:
                raise InputError(f"target parameter {f.name}: must be 0 or 1, got {value}")
            if value < low:
                raise InputError(f"target parameter {f.name}: must be >= {low}, got {value}")
        for name in POWER_OF_TWO_PARAMETERS:
            if not _is_pow2(getattr(self, name)):
                raise InputError(f"target parameter {name}: must be a power of two, got {getattr(self, name)}")
        self._check_at_most("nla_bits", NLA_BITS_MAX, "so the SSM's fixed-point intermediates stay below 2^62")
        self._check_at_least("nla_bits", NLA_BITS_MIN, "the NLA's Q1.(nla_bits-1) table needs a few fraction bits")
        if self.nla_segments.bit_length() > self.nla_bits:
            raise InputError(f"target parameter nla_segments: at most 2^(nla_bits - 1) = {1 << (self.nla_bits - 1)} "
                             f"(the SSM's dt_frac lies in [log2 nla_segments, nla_bits - 1]), "
                             f"got {self.nla_segments}")
        if self.ssm_state_bits not in SSM_STATE_BITS:
            raise InputError(f"target parameter ssm_state_bits: one of {', '.join(map(str, SSM_STATE_BITS))} "
                             f"(the state is stored as int32), got {self.ssm_state_bits}")
        # Limits the instruction formats impose (widths from the table in isa.instructions).
        self._check_below("buffer_bytes", 1 << _field_bits("ld", "buf"), "BUF addresses")
        self._check_below("ddr_bytes", 1 << _field_bits("ld", "ddr"), "DDR addresses")
        self._check_at_most("semaphores", (1 << _field_bits("ld", "sem")) - 1, "the sem field; 0 means none")
        self._check_at_most("hadamard_max_block", 1 << ((1 << _field_bits("lin", "hlog2")) - 1), "the hlog2 field")
        self._check_at_most("conv_kernel_max", (1 << _field_bits("conv", "kw")) - 1, "the kw field")
        self._check_at_least("conv_kernel_max", CONV_KERNEL_MIN, "the conv state holds kw - 1 >= 1 rows")
        self._check_at_most("vec_stages", len(VEC_MICRO_OP_FIELDS), "one stage per micro-op field at most")

    def _check_below(self, name: str, limit: int, why: str) -> None:
        if getattr(self, name) >= limit:
            raise InputError(f"target parameter {name}: must be below {limit} ({why}), got {getattr(self, name)}")

    def _check_at_most(self, name: str, limit: int, why: str) -> None:
        if getattr(self, name) > limit:
            raise InputError(f"target parameter {name}: at most {limit} ({why}), got {getattr(self, name)}")

    def _check_at_least(self, name: str, limit: int, why: str) -> None:
        if getattr(self, name) < limit:
            raise InputError(f"target parameter {name}: at least {limit} ({why}), got {getattr(self, name)}")

    # Derived rates.
    @property
    def clock_hz(self) -> float:
        return self.clock_mhz * 1e6

    @property
    def dma_bytes_per_cycle(self) -> float:
        return self.ddr_gbytes_per_s * 1e9 / self.clock_hz

    @property
    def lin_macs_per_cycle(self) -> int:
        return self.lin_groups * self.lin_mac_trees * self.lin_mac_tree_width

    @property
    def ssm_elems_per_cycle(self) -> int:
        return self.ssm_headdim_lanes * self.ssm_dstate_lanes

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def digest(self) -> bytes:
        """SHA-256 of the canonical JSON of every parameter: the identity binaries record."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).digest()


# `small`: the same ISA with few lanes and a 64 KiB buffer, so that the RTL (hardware/, docs/RTL.md)
# runs whole programs in Verilator in milliseconds.  Its DMA moves 16 bytes per cycle with each row
# its own burst, and its latencies are the RTL's pipeline depths (tests/test_hw_latency.py).
SMALL = Target(
    name="small", buffer_bytes=64 * 1024, ddr_bytes=16 * 1024**2, ddr_gbytes_per_s=4.0, dma_latency=16,
    dma_queue_depth=4, dma_row_bursts=1, semaphores=8, lin_groups=1, lin_hadamard_trees=1, lin_mac_trees=4,
    lin_mac_tree_width=4, lin_latency=9, lin_row_tiles=1, hadamard_max_block=16, conv_channels=4,
    conv_kernel_max=4, conv_latency=4, conv_row_tiles=1,
    ssm_headdim_lanes=4, ssm_dstate_lanes=4, ssm_latency=12, ssm_head_tiles=1, nla_lanes=4, vec_lanes=8, vec_latency=3,
    vec_row_tiles=1, vec_stages=1)

PRESETS: dict[str, Target] = {"vc709": Target(), "small": SMALL}


def preset_with_digest(digest: bytes) -> str | None:
    """The name of the preset whose digest a binary records, if any (how tools pick a binary's target)."""
    return next((name for name, t in PRESETS.items() if t.digest() == digest), None)


def target_from_dict(values: dict, base: Target | None = None, source: str = "target") -> Target:
    """`base` (default vc709) with `values` overriding it; unknown keys are errors."""
    base = base or PRESETS["vc709"]
    known = {f.name for f in fields(Target)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(f"{source}: unknown target parameter(s) {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(known))})")
    return dataclasses.replace(base, **values)


def load_target(spec: "str | Path | Target") -> Target:
    """A preset name ("vc709"), or a .toml/.json file of overrides to the vc709 preset."""
    if isinstance(spec, Target):
        return spec
    text = str(spec)
    if text in PRESETS:
        return PRESETS[text]
    path = Path(text)
    if path.suffix.lower() not in (".toml", ".json"):
        raise InputError(f"unknown target {text!r}: give a preset ({', '.join(PRESETS)}) or a .toml/.json file")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"target file not found: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot read target file {path}: {exc.strerror}") from None
    return parse_target(raw, path)


def parse_target(raw: bytes, path: "str | Path") -> Target:
    """The target a .toml/.json file's bytes `raw` describe (`path`: its name; the suffix picks the syntax).

    Anything malformed (bad syntax, not UTF-8, nesting too deep, a number too long) is an InputError."""
    path = Path(path)
    kind = path.suffix[1:].upper()
    try:
        values = tomllib.loads(raw.decode()) if kind == "TOML" else json.loads(raw)
    except RecursionError:  # [[[[... or {"a": {"a": ... deeper than Python's stack
        raise InputError(f"target file {path} is not valid {kind}: nested too deeply") from None
    except ValueError as exc:  # bad syntax or encoding (JSONDecodeError, TOMLDecodeError, UnicodeDecodeError are
        # ValueErrors), or an integer of more than sys.get_int_max_str_digits() digits
        message = str(exc).splitlines()[0].split("; use sys.set_int_max_str_digits")[0]
        raise InputError(f"target file {path} is not valid {kind}: {message}") from None
    if not isinstance(values, dict):
        raise InputError(f"target file {path}: expected a table of parameters")
    base_name = values.pop("base", "vc709")
    if not isinstance(base_name, str) or base_name not in PRESETS:
        raise InputError(f"target file {path}: unknown base preset {_shown(base_name)}")
    values.setdefault("name", re.sub(r"[^A-Za-z0-9_-]", "_", path.stem))
    return target_from_dict(values, PRESETS[base_name], source=f"target file {path}")
