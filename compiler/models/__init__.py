"""The models fastmamba ships; `default/` is the bundled byte-level Mamba2."""
