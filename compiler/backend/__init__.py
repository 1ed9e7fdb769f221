"""fastmamba.compiler.backend: the machinery between a sequence of accelerator instructions and a binary.

Helpers of the back-end passes, each one job: the dependence graph of a
straight-line instruction sequence (`depgraph`), the VLIW list scheduler with
DMA synchronization (`schedule`), on-chip buffer allocation (`buffer_alloc`)
and the emitter of scheduled `accel` IR to an `.fmb` binary (`emit`).  They
import `isa` and the `accel` dialect, never the simulator.
"""
