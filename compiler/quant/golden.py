"""The golden quantized Mamba2: the accelerator's semantics at tensor level, from docs/NUMERICS.md.

Place in the flow: reference (2) of docs/ARCHITECTURE.md §4.  It reads a config, a weight store
and a QuantPlan (compiler/quant/plan.py) and nothing of the passes, the lowering or
the simulator; the arithmetic is compiler/quant/fixed.py (written from the doc) and
the offline weight transformations compiler/quant/offline.py.  The IR after the
quantization passes, run by the interpreter, equals it bit for bit
(tests/test_quant_golden.py); `fastmamba eval` measures it against the FP32 reference.

Per layer, on the residual stream u (binary32); a unit left unquantized by the plan
(None) runs in binary32 with the same element-wise steps:
    VEC   a    = quant(rmsnorm(u) * out_scale)                       (norm weight folded into in_proj)
    LIN   zxbcdt = f32(sat32(requant(a @ H) @ Wq^T)) * f32(act_scale * w_scale)
    VEC   xc   = quant(xBC * 2^fx)                                   i16
    CONV  yc   = sat16(rshift_round(conv(xc) + bias, shift))         i16, 2^-fo
    VEC   x, B, C = quant(silu(yc * 2^-fo) * 2^f{x,b,c});  dt_raw = quant(dt * 2^dt_frac)
    SSM   y    = scan(x, dt_raw, (A, D, dt_bias), B, C)              i32, 2^-fy (softplus and exp by the NLA table)
    VEC   g    = quant(rmsnorm(y * 2^-fy * silu(z)) * out_scale)     (gated norm weight folded into out_proj)
    LIN   o    = ...;  VEC u = u + o
then the head, with the norm_f weight folded into it: in binary32, rmsnorm(u) @ head^T
(plan.head None, the default), or W8A8 like the projections (plan.head a LinearQuant):
    VEC   a      = quant(rmsnorm(u) * out_scale)
    LIN   logits = f32(sat32(requant(a @ H) @ Wq^T)) * f32(act_scale * w_scale)
Calibration records the head's input rmsnorm(u) at site HEAD_SITE ("lm_head").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fastmamba.compiler.config import Mamba2Config
from fastmamba.compiler.quant import fixed, offline
from fastmamba.compiler.quant.plan import HEAD_SITE, ConvQuant, LinearQuant, SSMQuant
from fastmamba.isa.target import Target, load_target

__all__ = ["LayerPlan", "QuantPlan", "GoldenMamba2", "as_numpy_weights", "head_name", "ssm_f32"]


@dataclass(frozen=True)
class LayerPlan:
    in_proj: LinearQuant | None = None
    out_proj: LinearQuant | None = None
    conv: ConvQuant | None = None
    ssm: SSMQuant | None = None


@dataclass(frozen=True)
class QuantPlan:
    layers: tuple[LayerPlan, ...]
    nonlinear: str = "table"  # quantized SSMs: "table" (the NLA's approximations) or "exact"
    fold_norms: bool = True  # norm weights folded into the linear layers (else a VEC multiply before them)
    ranges: Mapping[str, Mapping[str, float]] = field(default_factory=dict, compare=False)
    head: LinearQuant | None = None  # the LM head: None = binary32 (the default), else W8A8 like the projections


def as_numpy_weights(weights: Mapping[str, Any]) -> dict[str, np.ndarray]:
    out = {}
    for name in weights:
        w = weights[name]
        if hasattr(w, "detach"):
            import torch

            w = w.detach().to(torch.float32).cpu().numpy()
        out[name] = np.asarray(w, np.float32)
    return out


def head_name(config: Mamba2Config) -> str:
    return "backbone.embeddings.weight" if config.tie_embeddings else "lm_head.weight"


@dataclass
class _Linear:
    plan: LinearQuant | None
    w: np.ndarray  # float: folded weight [M, K]; quantized: int8 weights as float32 [M, K]
    scale: np.ndarray | None = None  # quantized: f32(act_scale * w_scale) [M]
    wscale: np.ndarray | None = None  # quantized: the weights' scales [M]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.plan is None:
            return x @ self.w.T
        p = self.plan
        a = fixed.quantize_float(x * np.float32(p.out_scale), p.in_type)
        if p.dynamic:
            return fixed.lin_dynamic_f32(a, self.w, self.wscale, hlog2=p.hlog2, in_scale=p.in_scale)
        return fixed.lin_f32(a, self.w, self.scale, hlog2=p.hlog2, qmul=p.qmul, qshift=p.qshift)


def make_linear(w: np.ndarray, norm: np.ndarray | None, plan: LinearQuant | None) -> _Linear:
    """The offline weight of one linear layer: norm folded (unless None), rotated, quantized as the plan says."""
    w = offline.scale_columns(w, norm) if norm is not None else np.asarray(w, np.float32)
    if plan is None:
        return _Linear(None, w)
    if plan.block > 1:
        w = offline.rotate_columns(w, plan.block)
    wq, wscale = offline.quantize_weight(w, plan.granularity)
    scale = (np.float64(plan.act_scale) * wscale.astype(np.float64)).astype(np.float32)
    return _Linear(plan, wq.astype(np.float32), scale, wscale)


def ssm_params(A_log: np.ndarray, D: np.ndarray, dt_bias: np.ndarray, q: SSMQuant) -> np.ndarray:
    """The SSM's per-head i32 parameters (A, D, dt_bias, 0) in their fixed-point formats (offline)."""
    A = -np.exp(np.asarray(A_log, np.float64))
    cols = [fixed.saturate(np.rint(A * 2.0 ** q.a_frac), "i32"),
            fixed.saturate(np.rint(np.asarray(D, np.float64) * 2.0 ** q.fd), "i32"),
            fixed.saturate(np.rint(np.asarray(dt_bias, np.float64) * 2.0 ** q.dt_frac), "i32"), np.zeros(len(A),
                                                                                                         np.int64)]
    return np.stack(cols, axis=1).astype(np.int64)


def conv_params(w: np.ndarray, bias: np.ndarray | None, q: ConvQuant) -> tuple[np.ndarray, np.ndarray]:
    """Conv weight i16 [kw, c] (fw fraction bits) and bias i32 at the accumulator's fx + fw (offline)."""
    wq = fixed.saturate(np.rint(np.asarray(w, np.float64)[:, 0, :].T * 2.0 ** q.fw), "i16")
    b = np.zeros(w.shape[0]) if bias is None else np.asarray(bias, np.float64)
    return wq, fixed.saturate(np.rint(b * 2.0 ** (q.fx + q.fw)), "i32")


class GoldenMamba2:
    """A Mamba2 language model run as the plan quantizes it; `prefill` has the FP32 reference's signature."""

    def __init__(self, config: Mamba2Config, weights: Mapping[str, Any], plan: QuantPlan,
                 target: str | Target = "vc709"):
        if len(plan.layers) != config.n_layer:
            raise ValueError(f"the plan has {len(plan.layers)} layers, the model {config.n_layer}")
        self.config, self.plan, self.target = config, plan, load_target(target)
        self.recorder = None  # calibration: a callable (site, quantity, array) seeing the float tensors
        w = as_numpy_weights(weights)
        c = config
        self.embedding = w["backbone.embeddings.weight"]
        self.head = make_linear(w[head_name(c)], w["backbone.norm_f.weight"], plan.head)
        self.layers = []
        fold = plan.fold_norms
        for i, lp in enumerate(plan.layers):
            p = f"backbone.layers.{i}.mixer."
            norm, gnorm = w[f"backbone.layers.{i}.norm.weight"], w[p + "norm.weight"]
            layer = {
                "in_proj": make_linear(w[p + "in_proj.weight"], norm if fold else None, lp.in_proj),
                "out_proj": make_linear(w[p + "out_proj.weight"], gnorm if fold else None, lp.out_proj),
                "norm": None if fold else norm, "gnorm": None if fold else gnorm, "site": p,
                "conv_w": w[p + "conv1d.weight"], "conv_b": w.get(p + "conv1d.bias"),
                "dt_bias": w[p + "dt_bias"], "A_log": w[p + "A_log"], "D": w[p + "D"],
            }
            if lp.conv is not None:
                layer["conv_q"] = conv_params(layer["conv_w"], layer["conv_b"], lp.conv)
            if lp.ssm is not None:
                layer["ssm_q"] = ssm_params(layer["A_log"], layer["D"], layer["dt_bias"], lp.ssm)
            self.layers.append(layer)

    # --- states: per layer (conv, ssm); integer where the unit is quantized ---------------------------------------
    def empty_states(self) -> list[tuple[np.ndarray, np.ndarray]]:
        c = self.config
        out = []
        for lp in self.plan.layers:
            conv = np.zeros((c.d_conv - 1, c.conv_dim), np.int64 if lp.conv else np.float32)
            ssm = np.zeros((c.nheads, c.headdim, c.d_state), np.int64 if lp.ssm else np.float32)
            out.append((conv, ssm))
        return out

    def prefill(self, tokens, states: Sequence | None = None):
        """Logits [1, L, vocab] (a torch tensor) for tokens [1, L], and the states after them."""
        import torch

        ids = np.asarray(tokens.cpu().numpy() if hasattr(tokens, "cpu") else tokens, np.int64)
        if ids.ndim != 2 or ids.shape[0] != 1:
            raise ValueError(f"tokens must have shape [1, L], got {list(ids.shape)}")
        logits, new_states = self.run(ids[0], states)
        return torch.from_numpy(logits)[None], new_states

    def run(self, ids: np.ndarray, states: Sequence | None = None) -> tuple[np.ndarray, list]:
        """Logits [L, vocab] (binary32) of every position and the new states."""
        c = self.config
        states = self.empty_states() if states is None else states
        u = self.embedding[ids]
        new_states = []
        for layer, lp, state in zip(self.layers, self.plan.layers, states):
            h = fixed.rmsnorm_f32(u, c.d_model, c.norm_eps)
            if layer["norm"] is not None:
                h = h * layer["norm"]
            out, new_state = self._mixer(layer, lp, h, state)
            u = (u + out).astype(np.float32)
            new_states.append(new_state)
        h = fixed.rmsnorm_f32(u, c.d_model, c.norm_eps)
        self._record(HEAD_SITE, "x", h)
        return self.head(h), new_states

    def step_batch(self, ids: Sequence[int], states: Sequence[Sequence]) -> tuple[np.ndarray, list[list]]:
        """One batched decode step: token ids[b] advances sequence b from states[b] (its per-layer (conv, ssm)
        list, None: a new sequence).  Logits [B, vocab] (row b: sequence b's) and each sequence's new states.

        The rows share every row-wise step (norms, the linears: one matmul of B rows, the head); each row's conv
        and SSM scan run from its own state.  Row b equals run([ids[b]], states[b]) bit for bit (every
        quantization is per row or static): what a batched decode program computes, slot by slot."""
        c = self.config
        slots = [self.empty_states() if s is None else list(s) for s in states]
        ids = np.asarray(ids, np.int64).reshape(-1)
        if len(slots) != ids.size:
            raise ValueError(f"{ids.size} token ids for {len(slots)} sequences' states")
        u = self.embedding[ids]
        per_layer = [[s[i] for s in slots] for i in range(len(self.layers))]
        news = []
        for layer, lp, layer_states in zip(self.layers, self.plan.layers, per_layer):
            h = fixed.rmsnorm_f32(u, c.d_model, c.norm_eps)
            if layer["norm"] is not None:
                h = h * layer["norm"]
            out, new = self._mixer(layer, lp, h, layer_states, slots=True)
            u = (u + out).astype(np.float32)
            news.append(new)
        h = fixed.rmsnorm_f32(u, c.d_model, c.norm_eps)
        return self.head(h), [[news[i][b] for i in range(len(self.layers))] for b in range(ids.size)]

    def _record(self, site: str, quantity: str, value: np.ndarray) -> None:
        if self.recorder is not None:
            self.recorder(site, quantity, value)

    def _mixer(self, layer: dict, lp: LayerPlan, h: np.ndarray, state, slots: bool = False):
        c = self.config
        site = layer["site"]
        self._record(site + "in_proj", "x", h)
        zxbcdt = layer["in_proj"](h)
        z = zxbcdt[:, :c.d_inner]
        xBC = zxbcdt[:, c.d_inner:c.d_inner + c.conv_dim]
        dt_raw = zxbcdt[:, c.d_inner + c.conv_dim:]
        if slots:  # one row per sequence, each through its own conv and SSM state
            ys, new_state = [], []
            for r, st in enumerate(state):
                y_r, new_r = self._recurrent(layer, lp, xBC[r:r + 1], dt_raw[r:r + 1], st)
                ys.append(y_r)
                new_state.append(new_r)
            y = np.concatenate(ys)
        else:
            y, new_state = self._recurrent(layer, lp, xBC, dt_raw, state)
        g = (y * fixed.silu_f32(z)).astype(np.float32)
        g = fixed.rmsnorm_f32(g, c.norm_group_size, c.gated_norm_eps)
        if layer["gnorm"] is not None:
            g = g * layer["gnorm"]
        self._record(site + "out_proj", "x", g)
        return layer["out_proj"](g), new_state

    def _recurrent(self, layer: dict, lp: LayerPlan, xBC: np.ndarray, dt_raw: np.ndarray, state):
        """The conv, SiLU and SSM scan of one sequence's rows from its (conv, ssm) state: y and the new state."""
        c = self.config
        site = layer["site"]
        conv_state, ssm_state = state
        gn = c.ngroups * c.d_state
        self._record(site + "conv1d", "x", xBC)
        self._record(site[:-1], "dt_raw", dt_raw)
        if lp.conv is None:
            conv, new_conv = _conv_f32(xBC, conv_state, layer["conv_w"], layer["conv_b"])
        else:
            q = lp.conv
            wq, bias = layer["conv_q"]
            xc = fixed.quantize_float(xBC * np.float32(2.0 ** q.fx), "i16")
            yc, new_conv = fixed.conv_q(xc, conv_state, wq, bias, q.shift, "i16")
            conv = fixed.dequant(yc, -q.fo)
        self._record(site + "conv1d", "y", conv)
        act = fixed.silu_f32(conv)
        x, B, C = act[:, :c.d_inner], act[:, c.d_inner:c.d_inner + gn], act[:, c.d_inner + gn:]
        if lp.ssm is None:
            dt = fixed.softplus_f32(dt_raw + layer["dt_bias"])
            y, new_ssm, state_amax = ssm_f32(x, dt, layer["A_log"], B, C, layer["D"], ssm_state, c,
                                             with_amax=self.recorder is not None)
            if self.recorder is not None:
                for quantity, value in (("x", x), ("B", B), ("C", C), ("dt", dt), ("y", y), ("state", state_amax)):
                    self._record(site[:-1], quantity, value)
        else:
            q = lp.ssm
            t = self.target
            ints = [fixed.quantize_float(v * np.float32(2.0 ** f), "i16") for v, f in ((x, q.fx), (B, q.fb), (C, q.fc),
                                                                                       (dt_raw, q.dt_frac))]
            xq, Bq, Cq, dtq = ints
            params = layer["ssm_q"]
            yq, new_ssm = fixed.ssm_scan_q(
                xq.reshape(-1, c.nheads, c.headdim), Bq.reshape(-1, c.ngroups, c.d_state), Cq.reshape(-1, c.ngroups,
                                                                                                      c.d_state),
                dtq, params[:, 0], params[:, 1], params[:, 2], ssm_state, hpg=c.heads_per_group, dt_frac=q.dt_frac,
                a_frac=q.a_frac, dbx_shift=q.dbx_shift, y_shift=q.y_shift, d_shift=q.d_shift, segments=t.nla_segments,
                bits=t.nla_bits, state_bits=t.ssm_state_bits, nonlinear=self.plan.nonlinear)
            y = fixed.dequant(yq.reshape(-1, c.d_inner), -q.fy)
        return y, (new_conv, new_ssm)


def _conv_f32(x: np.ndarray, state: np.ndarray, w: np.ndarray, bias: np.ndarray | None):
    """Causal depthwise conv in binary32; state [kw-1, c] (oldest row first)."""
    kw = w.shape[2]
    xx = np.concatenate([state, x], axis=0)
    t = x.shape[0]
    y = np.zeros_like(x)
    for j in range(kw):
        y += w[:, 0, j] * xx[j:j + t]
    if bias is not None:
        y += bias
    return y, xx[t:t + kw - 1].copy()


def ssm_f32(x, dt, A_log, B, C, D, state, c: Mamba2Config, with_amax: bool = True, with_y: bool = True):
    """The selective scan in binary32 (torch, one token at a time), state [h, p, n]; y is None unless `with_y`
    (calibration wants only the state's largest magnitude)."""
    import torch

    t = x.shape[0]
    xh = torch.from_numpy(np.ascontiguousarray(x)).view(t, c.nheads, c.headdim)
    g_of = torch.arange(c.nheads) // c.heads_per_group
    Bh = torch.from_numpy(np.ascontiguousarray(B)).view(t, c.ngroups, c.d_state)[:, g_of]
    Ch = torch.from_numpy(np.ascontiguousarray(C)).view(t, c.ngroups, c.d_state)[:, g_of]
    dtt = torch.from_numpy(np.ascontiguousarray(dt))
    decay = torch.exp(dtt * -torch.exp(torch.from_numpy(A_log)))
    st = torch.from_numpy(np.array(state, np.float32, copy=True))
    y = torch.empty(t, c.nheads, c.headdim)
    amax = torch.zeros(())
    # blocks bound the memory of the per-token states (and small ones stay in cache: without y, 4 tokens' states
    # take a third of the time of 32); the arithmetic is per element, the same bits for any block
    block = 32 if with_y else 4
    for start in range(0, t, block):
        stop = min(t, start + block)
        dbx = (dtt[start:stop, :, None] * xh[start:stop])[..., None] * Bh[start:stop, :, None, :]  # [b, h, p, n]
        dab = decay[start:stop, :, None, None]
        prev = dbx[0].addcmul_(st, dab[0])
        for i in range(1, stop - start):  # dbx[i] <- the state after token start + i
            prev = dbx[i].addcmul_(prev, dab[i])
        st = prev.clone()
        if with_amax:  # max |dbx| as max(max, -min), without an |dbx| copy (.abs(): no -0.0 left)
            amax = torch.maximum(amax, torch.maximum(dbx.max(), -dbx.min()).abs())
        if with_y:
            y[start:stop] = torch.einsum("thpn,thn->thp", dbx, Ch[start:stop])
    amax_out = np.array([float(amax)], np.float32)
    if not with_y:
        return None, st.numpy(), amax_out
    y = y + torch.from_numpy(D)[:, None] * xh
    return y.reshape(t, -1).numpy(), st.numpy(), amax_out
