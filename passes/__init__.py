"""passes: one transformation of the compiler's IR per module.

Each is a frozen-dataclass xDSL `ModulePass` whose fields are its options.
"""
