"""Test helper: a hand-built .fmb that follows the compiled-model contract of compiler/runner.py, and its golden twin.

Place in the flow: test support only (the runner and `fastmamba run` before
the compiler exists).  The toy "model" has a byte vocabulary and a window of
the last WINDOW tokens as its recurrent state; its programs use only DMA:

    for each layer i:  layers.{i}.ssm  <- (the old window without its oldest n tokens) ++ the n tokens fed
                       layers.{i}.conv untouched (carried as it is)
    logits     <- TABLE[w], w the oldest token of layer 0's new window; TABLE[r] peaks at (5 r + 1) mod vocab
    next_token <- argmax(logits) (`vec.argmax`)

so greedy generation follows s[j+1] = peak(s[j-7]) (zeros before the start):
a state that is not carried from run to run changes the tokens.  `ToyGolden`
computes the same in numpy with the golden model's `run(ids, states)`.
"""

from __future__ import annotations

import json

import numpy as np

from fastmamba.isa.costs import duration

from fastmamba.compiler.config import Mamba2Config
from fastmamba.isa.container import Binary, Program, TensorDesc
from fastmamba.isa.instructions import Bundle, Instruction
from fastmamba.isa.target import load_target

TARGET = load_target("vc709")
VOCAB = 256
WINDOW = 8
# A Mamba2 shape whose ssm state (nheads, headdim, d_state) holds WINDOW values: (2, 2, 2); conv state (1, 8).
CONFIG = Mamba2Config(d_model=4, n_layer=1, vocab_size=VOCAB, d_state=2, headdim=2, expand=1, ngroups=1, d_conv=2)
SSM_SHAPE = (CONFIG.nheads, CONFIG.headdim, CONFIG.d_state)
CONV_SHAPE = (CONFIG.d_conv - 1, CONFIG.conv_dim)


def table() -> np.ndarray:
    """The logits table: row r is -((c - (5 r + 1)) mod vocab) over columns c, so its argmax is (5 r + 1) mod vocab."""
    r, c = np.arange(VOCAB)[:, None], np.arange(VOCAB)[None, :]
    return (-((c - (5 * r + 1)) % VOCAB)).astype(np.float32)


def peak(token: int) -> int:
    return (5 * token + 1) % VOCAB


def greedy_continuation(prompt: list[int], n: int, shift: int = 0) -> list[int]:
    """The toy model's greedy continuation: s[j+1] = peak(s[j-7]) (+ shift), zeros before the start."""
    s = list(prompt)
    for _ in range(n):
        j = len(s) - 1
        s.append((peak(s[j - (WINDOW - 1)] if j >= WINDOW - 1 else 0) + shift) % VOCAB)
    return s[len(prompt):]


# DDR: the table at 0, then the tensors; BUF: the window at 0, the logits row after it.
BASE = VOCAB * VOCAB * 4
TOKENS, LOGITS, NEXT, STATES = BASE, BASE + 1024, BASE + 2048, BASE + 2112
LAYER_BYTES = 64  # per layer: conv (16 bytes) then ssm (32 bytes)
ROW = 4 * VOCAB
LOG_BUF = 64
ARG_BUF = LOG_BUF + ROW


def _ld(buf: int, ddr: int, nbytes: int, sem: int) -> Instruction:
    return Instruction("ld", dict(buf=buf, ddr=ddr, rows=1, row_bytes=nbytes, ddr_stride=nbytes, buf_stride=nbytes,
                                  sem=sem))


def _st(ddr: int, buf: int, nbytes: int, sem: int) -> Instruction:
    return Instruction("st", dict(ddr=ddr, buf=buf, rows=1, row_bytes=nbytes, ddr_stride=nbytes, buf_stride=nbytes,
                                  sem=sem))


def _wait(sem: int, count: int) -> Bundle:
    return Bundle((Instruction("ctl.wait", dict(sem=sem, count=count)),))


def program(name: str, n: int, n_layer: int = 1) -> Program:
    """The toy program feeding n tokens (n <= WINDOW)."""
    assert 1 <= n <= WINDOW
    keep = 4 * (WINDOW - n)  # bytes of the old window that stay
    bundles: list[Bundle] = []
    for i in range(n_layer):
        ssm = STATES + i * LAYER_BYTES + 16
        loads = ([_ld(0, ssm + 4 * n, keep, 1)] if keep else []) + [_ld(keep, TOKENS, 4 * n, 1)]
        bundles += [Bundle((op,)) for op in loads] + [_wait(1, len(loads))]
        if i == 0:
            gather = Instruction("ldg", dict(buf=LOG_BUF, ddr=0, idx=0, rows=1, row_bytes=ROW, ddr_stride=ROW,
                                             buf_stride=ROW, limit=VOCAB, sem=3))
            argmax = Instruction("vec.argmax", dict(dst=ARG_BUF, a=LOG_BUF, rows=1, cols=VOCAB))
            bundles += [Bundle((gather,)), _wait(3, 1), Bundle((argmax,), delay=duration(argmax, TARGET)),
                        Bundle((_st(NEXT, ARG_BUF, 4, 2),)), Bundle((_st(LOGITS, LOG_BUF, ROW, 2),))]
        bundles += [Bundle((_st(ssm, 0, 4 * WINDOW, 2),)), _wait(2, 3 if i == 0 else 1)]
    bundles.append(Bundle((Instruction("ctl.halt"),)))
    tensors = [TensorDesc("tokens", "input", TOKENS, (n,), "i32"),
               TensorDesc("logits", "output", LOGITS, (1, VOCAB), "f32"),
               TensorDesc("next_token", "output", NEXT, (1,), "i32")]
    for i in range(n_layer):
        tensors += [TensorDesc(f"layers.{i}.conv", "state", STATES + i * LAYER_BYTES, CONV_SHAPE, "i16"),
                    TensorDesc(f"layers.{i}.ssm", "state", STATES + i * LAYER_BYTES + 16, SSM_SHAPE, "i32")]
    return Program(name, STATES + n_layer * LAYER_BYTES, tuple(bundles), tuple(tensors))


def meta(seq_len: int, model: str = "/nonexistent/toy-model", n_layer: int = 1, **overrides) -> dict:
    from fastmamba.compiler.quant.golden import LayerPlan, QuantPlan
    from fastmamba.compiler.quant.plan_io import plan_to_dict

    config = Mamba2Config(**{**CONFIG.to_dict(), "n_layer": n_layer})
    doc = {"format": "fastmamba/1", "model": model, "bundled": False, "config": config.to_dict(), "seq_len": seq_len,
           "target": "vc709", "plan": plan_to_dict(QuantPlan(tuple(LayerPlan() for _ in range(n_layer))))}
    doc.update(overrides)
    return doc


def toy_binary(seq_len: int = 4, n_layer: int = 1, meta_doc: dict | None = None, with_meta: bool = True) -> Binary:
    """The toy model compiled for prefill chunks of `seq_len` tokens."""
    text = json.dumps(meta_doc if meta_doc is not None else meta(seq_len, n_layer=n_layer)) if with_meta else ""
    programs = (program("prefill", seq_len, n_layer), program("decode", 1, n_layer))
    return Binary(programs, table().tobytes(), TARGET.digest(), text)


class ToyGolden:
    """The toy model in numpy, with GoldenMamba2.run's signature; `corrupt(step, tensor)` makes one answer wrong."""

    def __init__(self, corrupt: tuple[int, str] | None = None):
        self.calls: list[list[int]] = []
        self.corrupt = corrupt

    def run(self, ids: np.ndarray, states):
        step = len(self.calls)
        self.calls.append([int(t) for t in ids])
        out_states = []
        for conv, ssm in states:
            window = np.concatenate([np.asarray(ssm).reshape(-1), np.asarray(ids, np.int64)])[-WINDOW:]
            out_states.append((np.asarray(conv, np.int64).copy(), window.reshape(SSM_SHAPE).astype(np.int64)))
        oldest = int(np.asarray(out_states[0][1]).reshape(-1)[0])
        logits = np.repeat(table()[oldest][None], len(ids), axis=0)  # the runner compares the last position only
        if self.corrupt is not None and self.corrupt[0] == step:
            tensor = self.corrupt[1]
            if tensor == "logits":
                logits[-1, 3] += 0.5
            else:
                layer, kind = int(tensor.split(".")[1]), tensor.split(".")[2]
                conv, ssm = out_states[layer]
                out_states[layer] = (conv + 2, ssm) if kind == "conv" else (conv, ssm - 7)
        return logits, out_states
