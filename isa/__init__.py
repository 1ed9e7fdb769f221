"""isa: the single source of truth for the accelerator's instruction set.

Bottom of the dependency order: it imports nothing else of fastmamba.  Holds
the target configurations (hardware parameters), the instruction table from
which the encoder, decoder, assembler, disassembler and docs derive, the
numeric semantics shared by the simulator and the golden model, and the .fmb
binary container.
"""
