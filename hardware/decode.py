"""Instruction fetch and bundle decode, generated from the instruction table (`fastmamba.isa.instructions`).

Place in the flow: the front of the RTL machine (`hardware.machine`).  The
host loads a program's instruction stream (isa/encoding.py: a 64-bit header
word with the slot mask and delay, then each operation's words in slot order)
into the instruction memory; `BundleFetch` presents the bundle at the program
counter, decoded, every cycle, and the control steps the program counter by the
bundle's length when it issues it.

Nothing here writes a field position or an opcode: `op_layout(name)` is an
Amaranth `data.StructLayout` built from the op's `FieldSpec`s (opcode byte
first, then the fields LSB-first in table order, as isa/encoding.py packs
them), and every unit reads its fields by name through it.

The instruction memory is `IMEM_BANKS` banks interleaved by word address, so
that the words of any bundle (at most `window_words()` of them) are read in
one cycle from any start: bank j holds the words with address % banks == j.
Reads are asynchronous (distributed RAM on an FPGA; docs/RTL.md).
"""

from __future__ import annotations

from functools import lru_cache

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from fastmamba.isa.encoding import DELAY_SHIFT, WORD_BYTES
from fastmamba.isa.instructions import BUNDLE_DELAY_BITS, OPCODE_BITS, OPS, SLOTS

WORD_BITS = WORD_BYTES * 8
# The slots whose units this RTL implements.
RTL_SLOTS: tuple[str, ...] = ("LD", "ST", "LIN", "CONV", "SSM", "VEC", "CTL")
RTL_OPS: tuple[str, ...] = tuple(name for name, spec in OPS.items() if spec.slot in RTL_SLOTS)


@lru_cache(maxsize=None)
def op_layout(op_name: str) -> data.StructLayout:
    """The encoded operation as a struct: `opcode`, then every field of the table, by name."""
    spec = OPS[op_name]
    members = {"opcode": unsigned(OPCODE_BITS)}
    for f in spec.fields:
        members[f.name] = signed(f.bits) if f.kind == "s" else unsigned(f.bits)
    return data.StructLayout(members)


def slot_words(slot: str) -> int:
    """The longest operation of a slot, in 64-bit words."""
    return max(spec.words for spec in OPS.values() if spec.slot == slot)


def window_words() -> int:
    """The longest bundle the RTL runs: the header word and the longest op of every implemented slot."""
    return 1 + sum(slot_words(s) for s in RTL_SLOTS)


IMEM_BANKS = 1 << (window_words() - 1).bit_length()
SLOT_MASK_BITS = len(SLOTS)


class BundleFetch(wiring.Component):
    """The instruction memory and a combinational decode of the bundle at `pc` (a word address).

    Host port: `load_en`, `load_addr` (a row), `load_data` (IMEM_BANKS words) write one row of the banks per
    cycle: word j of the row is word address row * IMEM_BANKS + j (a program of n words loads in
    ceil(n / IMEM_BANKS) cycles; the Verilated harness pays a whole machine evaluation per cycle).
    Outputs: `mask` (a bit per slot of SLOTS), `delay`, `length` (words),
    per implemented slot `op[slot]` (its words, raw: view with `op_layout`)
    and `opcode[slot]`; `bad_slot` is set when the mask names a slot the RTL
    lacks or an opcode of the wrong slot.
    """

    def __init__(self, imem_words: int):
        self.imem_words = imem_words
        self.depth = -(-imem_words // IMEM_BANKS)
        self.addr_bits = max(1, (imem_words - 1).bit_length())
        self.row_bits = max(1, (self.depth - 1).bit_length())
        members = {
            "load_en": In(1), "load_addr": In(self.row_bits), "load_data": In(WORD_BITS * IMEM_BANKS),
            "pc": In(self.addr_bits + 1),
            "mask": Out(SLOT_MASK_BITS), "delay": Out(BUNDLE_DELAY_BITS), "length": Out(8), "bad_slot": Out(1),
        }
        for slot in RTL_SLOTS:
            members[f"op_{slot}"] = Out(slot_words(slot) * WORD_BITS)
            members[f"opcode_{slot}"] = Out(OPCODE_BITS)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        nb = IMEM_BANKS
        lb = nb.bit_length() - 1
        banks = []
        for j in range(nb):
            mem = Memory(shape=unsigned(WORD_BITS), depth=self.depth, init=[])
            m.submodules[f"imem{j}"] = mem
            wp = mem.write_port()
            m.d.comb += [wp.addr.eq(self.load_addr), wp.data.eq(self.load_data[j * WORD_BITS:(j + 1) * WORD_BITS]),
                         wp.en.eq(self.load_en)]
            banks.append(mem.read_port(domain="comb"))
        # Word k of the window (k < banks) comes from bank (pc + k) % banks.
        low = self.pc[:lb] if lb else Const(0)
        row = self.pc >> lb
        for j, rp in enumerate(banks):
            m.d.comb += rp.addr.eq(row + (Const(j, lb + 1) < low))
        words = []
        for k in range(window_words()):
            sel = Signal(range(nb), name=f"wsel{k}")
            m.d.comb += sel.eq(low + k)
            w = Signal(WORD_BITS, name=f"w{k}")
            with m.Switch(sel):
                for j, rp in enumerate(banks):
                    with m.Case(j):
                        m.d.comb += w.eq(rp.data)
            words.append(w)
        window = Cat(*words)
        header = words[0]
        m.d.comb += [self.mask.eq(header[:SLOT_MASK_BITS]),
                     self.delay.eq(header[DELAY_SHIFT:DELAY_SHIFT + BUNDLE_DELAY_BITS])]

        offset = Const(1, 8)  # words before the next present op
        bad = Const(0)
        for si, slot in enumerate(SLOTS):
            present = header[si]
            if slot not in RTL_SLOTS:
                bad = bad | present
                continue
            width = slot_words(slot) * WORD_BITS
            raw = Signal(width, name=f"raw_{slot}")
            # the op's words start at `offset`: a word-granular barrel shift of the window
            with m.Switch(offset):
                for o in range(1, window_words() - slot_words(slot) + 2):
                    with m.Case(o):
                        bits = window[o * WORD_BITS:o * WORD_BITS + width]
                        m.d.comb += raw.eq(bits)
            opcode = raw[:OPCODE_BITS]
            length = Signal(8, name=f"len_{slot}")
            known = Signal(name=f"known_{slot}")
            with m.Switch(opcode):
                for spec in OPS.values():
                    if spec.slot == slot:
                        with m.Case(spec.opcode):
                            m.d.comb += [length.eq(spec.words), known.eq(1)]
            m.d.comb += [getattr(self, f"op_{slot}").eq(Mux(present, raw, 0)),
                         getattr(self, f"opcode_{slot}").eq(Mux(present, opcode, 0))]
            bad = bad | (present & ~known)
            nxt = Signal(8, name=f"off_after_{slot}")
            m.d.comb += nxt.eq(offset + Mux(present, length, 0))
            offset = nxt
        m.d.comb += [self.length.eq(offset), self.bad_slot.eq(bad)]
        return m
