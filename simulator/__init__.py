"""simulator: decoder-driven, instruction-level execution of .fmb binaries.

Imports only `isa`: it runs binaries and knows no IR.  Functional semantics
(bit-exact with the golden model) and a timing model read from the same
target config as the compiler's scheduler.
"""
