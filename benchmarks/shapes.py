"""Benchmark support: the paper's model shapes and their quantized IR, defined in fastmamba.compiler.explore.shapes
(`fastmamba explore` compiles them too); re-exported here for the benchmarks' `from shapes import ...`."""

from fastmamba.compiler.explore.shapes import (PAPER_DECODE_TOKENS_PER_S, SHAPES, RandomWeights, quantized_module,
                                               ranges_by_calibration)

__all__ = ["PAPER_DECODE_TOKENS_PER_S", "SHAPES", "RandomWeights", "quantized_module", "ranges_by_calibration"]
