"""The on-chip buffer (BUF) as block RAM: two word-interleaved banks with byte enables, a port per client.

Place in the flow: instantiated by the machine (`hardware.machine`); the DMA
engines and the compute units each get their own ports.  Organisation
(docs/RTL.md): the buffer is `buffer_bytes` bytes in words of `word_bytes`
(the DMA's bytes per cycle, a power of two); even words live in bank 0, odd
words in bank 1.  Any window of up to `word_bytes` bytes at any byte address
covers at most two consecutive words, one in each bank, so every port moves
one unaligned window per cycle.  Ports never conflict: each client has its
own read or write port on both banks (on an FPGA a memory with several write
ports is built from replicated BRAM and a live-value table; docs/RTL.md).

`read_port(m, name)` returns a `WindowRead` (set `addr`, `en` in a cycle;
`data` holds the window's bytes, byte 0 at `addr`, in the next cycle);
`write_port(m, name)` a `WindowWrite` (`addr`, `len` <= word_bytes, `data`
byte 0 at `addr`, `en`: written at the end of the cycle).  Ports made inside `with buf.ports_in(domain)`
are clocked by that domain (the machine clocks each compute unit's ports with the unit: docs/RTL.md's
speed section).
"""

from __future__ import annotations

from contextlib import contextmanager

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib.memory import Memory


class WindowRead:
    def __init__(self, addr_bits: int, word_bytes: int, name: str):
        self.addr = Signal(addr_bits, name=f"{name}_addr")
        self.en = Signal(name=f"{name}_en")
        self.data = Signal(word_bytes * 8, name=f"{name}_data")


class WindowWrite:
    def __init__(self, addr_bits: int, word_bytes: int, name: str):
        self.addr = Signal(addr_bits, name=f"{name}_addr")
        self.len = Signal(range(word_bytes + 1), name=f"{name}_len")
        self.data = Signal(word_bytes * 8, name=f"{name}_data")
        self.en = Signal(name=f"{name}_en")


class Buffer:
    def __init__(self, buffer_bytes: int, word_bytes: int):
        if word_bytes & (word_bytes - 1):
            raise ValueError(f"buffer word of {word_bytes} bytes: must be a power of two")
        self.word_bytes = word_bytes
        self.lw = word_bytes.bit_length() - 1
        words = -(-buffer_bytes // word_bytes)
        self.rows = -(-words // 2)
        self.addr_bits = max(1, (self.rows * 2 * word_bytes - 1).bit_length())
        self.banks = [Memory(shape=unsigned(word_bytes * 8), depth=self.rows, init=[]) for _ in range(2)]
        self.domain = "sync"  # the clock domain of the ports being made (ports_in)

    @contextmanager
    def ports_in(self, domain: str):
        """Ports made in this block are clocked by `domain`."""
        old, self.domain = self.domain, domain
        try:
            yield
        finally:
            self.domain = old

    def _domain(self) -> dict:
        return {} if self.domain == "sync" else {"domain": self.domain}

    def add_to(self, m: Module) -> None:
        for b, mem in enumerate(self.banks):
            m.submodules[f"buf_bank{b}"] = mem

    def _split(self, addr):
        """(word index, byte offset) of an address; the bank rows of the two words a window covers."""
        wi = addr >> self.lw
        off = addr[:self.lw]
        parity = wi[0]
        # bank b holds the covered word of parity b: wi if wi % 2 == b else wi + 1
        row0 = Mux(parity, (wi + 1) >> 1, wi >> 1)
        row1 = wi >> 1
        return off, parity, (row0, row1)

    def read_port(self, m: Module, name: str) -> WindowRead:
        B = self.word_bytes
        port = WindowRead(self.addr_bits, B, name)
        off, parity, rows = self._split(port.addr)
        reads = []
        for b, mem in enumerate(self.banks):
            rp = mem.read_port(**self._domain())
            m.d.comb += [rp.addr.eq(rows[b]), rp.en.eq(port.en)]
            reads.append(rp)
        off_q = Signal.like(off, name=f"{name}_off_q")
        par_q = Signal(name=f"{name}_par_q")
        with m.If(port.en):
            m.d[self.domain] += [off_q.eq(off), par_q.eq(parity)]
        line = Mux(par_q, Cat(reads[1].data, reads[0].data), Cat(reads[0].data, reads[1].data))
        m.d.comb += port.data.eq((line >> (off_q * 8))[:B * 8])
        return port

    def write_port(self, m: Module, name: str) -> WindowWrite:
        B = self.word_bytes
        port = WindowWrite(self.addr_bits, B, name)
        off, parity, rows = self._split(port.addr)
        line = Signal(2 * B * 8, name=f"{name}_line")
        mask = Signal(2 * B, name=f"{name}_mask")
        m.d.comb += [line.eq(port.data << (off * 8)),
                     mask.eq((((Const(1, 2 * B + 1) << port.len) - 1) << off)[:2 * B])]
        halves = [(line[:B * 8], mask[:B]), (line[B * 8:], mask[B:])]
        for b, mem in enumerate(self.banks):
            wp = mem.write_port(granularity=8, **self._domain())
            # bank b takes the first covered word when that word has parity b, else the second
            first = parity == b
            data = Mux(first, halves[0][0], halves[1][0])
            en = Mux(first, halves[0][1], halves[1][1])
            m.d.comb += [wp.addr.eq(rows[b]), wp.data.eq(data), wp.en.eq(Mux(port.en, en, 0))]
        return port
