"""The accelerator as RTL (Amaranth), generated from fastmamba.isa.target.Target; imports only fastmamba.isa.

Place in the flow: beside the simulator, a second executor of `.fmb` programs.
Every width, lane count, latency and memory size of the units here comes from a
`Target`; the arithmetic follows docs/NUMERICS.md bit for bit.
"""
