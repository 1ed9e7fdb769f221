"""Test helpers: write and read row-pitched 2-D arrays in a MachineState's on-chip buffer."""

import numpy as np


def put(state, addr, arr, ld=None):
    """Write `arr` (1-D: one row) at byte `addr`, rows `ld` elements apart (default: packed)."""
    arr = np.atleast_2d(np.asarray(arr))
    rows, cols = arr.shape
    pitch = (ld or cols) * arr.itemsize
    for r in range(rows):
        state.buf[addr + r * pitch:addr + r * pitch + cols * arr.itemsize] = np.ascontiguousarray(arr[r]).view(np.uint8)


def get(state, addr, rows, cols, dtype, ld=None):
    """Read a [rows, cols] array of `dtype` at byte `addr`, rows `ld` elements apart (default: packed)."""
    size = np.dtype(dtype).itemsize
    pitch = (ld or cols) * size
    return np.stack([state.buf[addr + r * pitch:addr + r * pitch + cols * size].view(dtype) for r in range(rows)])
