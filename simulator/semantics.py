"""`SEMANTICS`: the semantics of each operation by name.

Place in the flow: `simulator.engine` looks operations up in `SEMANTICS`
(one `UnitSemantics` per op, `simulator/units/*`) and calls `footprint`,
then `execute`, at issue.  The units share their operand helpers through
`simulator.operands`, below both this module and them.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

from fastmamba.simulator.effects import UnitSemantics
from fastmamba.simulator.units import conv, dma, lin, ssm, vec

SEMANTICS: Mapping[str, UnitSemantics] = MappingProxyType({
    "ld": dma.LOAD,
    "ldg": dma.GATHER,
    "st": dma.STORE,
    "lin": lin.LINEAR,
    "conv": conv.CONV,
    "ssm": ssm.SCAN,
    "vec": vec.CHAIN,
    "vec.argmax": vec.ARGMAX,
})
