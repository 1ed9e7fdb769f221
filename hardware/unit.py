"""The machine's side of a compute unit: the ports every unit controller has, and the op it runs.

Place in the flow: the base of `hardware.lin_unit.LinUnit`, `conv_unit.ConvUnit`, `ssm_unit.SsmUnit` and
`vec_unit.VecUnit`, which `hardware.machine` drives alike: `start` (the op in `op` issues this cycle), `op`
(its raw bits), `entry` (its in-flight table entry); `ready` (a new op may issue), `done` / `done_entry` (an
op's last result written this cycle), `busy_cycle` (a beat this cycle), `macs_of_op` (the MACs of the op in
`op`).  `running_op` builds what every controller starts from: the op held while its beats go out, and the
beat of this cycle (the running op's, or the issuing op's first).
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Elaboratable, Module, Signal


@dataclass
class RunningOp:
    """The op a unit runs: `held` (its parameters), `entry`, `active` and the beat counters `regs`, registered;
    `cur`, `cur_entry`, `curs` (this cycle's beat: the held op's, or the issuing op's with the counters 0) and
    `go` (a beat this cycle)."""

    held: Signal
    entry: Signal
    active: Signal
    regs: dict
    cur: Signal
    cur_entry: Signal
    curs: dict
    go: Signal


class ComputeUnit(Elaboratable):
    """The ports for the machine (the module docstring); a subclass gives `pipeline_latency(target)`."""

    def __init__(self, target, op_bits: int):
        self.target = target
        self.start = Signal()
        self.op = Signal(op_bits)
        self.entry = Signal(8)
        self.ready = Signal()
        self.done = Signal()
        self.done_entry = Signal(8)
        self.busy_cycle = Signal()
        self.macs_of_op = Signal(64)

    @staticmethod
    def pipeline_latency(target) -> int:
        raise NotImplementedError

    def running_op(self, m: Module, layout, new, counters: dict) -> RunningOp:
        """The held op and this cycle's beat, for an op of `layout` (`new`: the issuing op's parameters) and beat
        counters {name: shape}.  A new op may issue once the running one's beats are over (`ready`: the unit is
        free at issue + occupancy; an op issued in the last beat's cycle would find the unit active and be
        lost)."""
        run = RunningOp(held=Signal(layout, name="op_held"), entry=Signal(8, name="op_entry"),
                        active=Signal(name="active"), regs={n: Signal(s, name=n) for n, s in counters.items()},
                        cur=Signal(layout, name="op_cur"), cur_entry=Signal(8, name="cur_entry"),
                        curs={n: Signal(s, name=f"c_{n}") for n, s in counters.items()}, go=Signal(name="go"))
        # (`cur` is the issuing op's whenever the unit is not active, a beat or not: so it does not depend on
        # `start`, and the machine's gated clocks leave the logic computed from it alone while no op issues)
        with m.If(run.active):
            m.d.comb += [run.cur.eq(run.held), run.cur_entry.eq(run.entry), run.go.eq(1)]
            m.d.comb += [run.curs[n].eq(run.regs[n]) for n in counters]
        with m.Else():
            m.d.comb += [run.cur.eq(new), run.cur_entry.eq(self.entry), run.go.eq(self.start)]
        m.d.comb += [self.busy_cycle.eq(run.go), self.ready.eq(~run.active)]
        return run
