"""Per-unit functional semantics: one module per unit (dma, lin, conv, ssm, vec)."""
