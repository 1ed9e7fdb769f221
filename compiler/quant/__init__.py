"""Quantization helpers that are not passes: Hadamard blocks, the fixed-point arithmetic of
docs/NUMERICS.md, calibration statistics, the scale plan, the golden quantized model and
the evaluation schemes.

Place in the flow: beside the dialects (imported by passes/ and by the `eval` command);
nothing here imports passes/, the pipeline driver, isa.numerics or the simulator.
"""
