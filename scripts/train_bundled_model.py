"""Train the bundled default model: a byte-level Mamba2 on tinyshakespeare.

Place in the flow: this script produces the weights under
`compiler/models/default/` that every other part of fastmamba uses as its
default model.  It trains with transformers' pure-PyTorch Mamba2 (the chunked
SSD form is far faster to differentiate than our sequential reference) and
writes the checkpoint with `save_pretrained`, i.e. in the transformers layout
that `compiler.checkpoint` loads.

Reproducible from the seed on the CPU: data order, initialisation and the
optimiser are all seeded, and the number of steps is fixed (not a time
budget).  Run:

    .venv/bin/python scripts/train_bundled_model.py --out compiler/models/default
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tinyshakespeare.txt"

# The bundled model's shape: the 130M model's proportions (expand 2, ngroups 1,
# conv kernel 4, tied embeddings) scaled down to about 2.7M parameters.
SHAPE = dict(
    vocab_size=256,
    hidden_size=256,
    num_hidden_layers=6,
    state_size=64,
    head_dim=32,
    num_heads=16,
    expand=2,
    n_groups=1,
    conv_kernel=4,
    chunk_size=64,
    tie_word_embeddings=True,
    use_bias=False,
    use_conv_bias=True,
    layer_norm_epsilon=1e-5,
    residual_in_fp32=True,
    pad_token_id=0,
    bos_token_id=0,
    eos_token_id=0,
)


def split_bytes(path: Path, train_fraction: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    data = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    cut = int(len(data) * train_fraction)
    return data[:cut], data[cut:]


@torch.no_grad()
def bits_per_byte(model, data: np.ndarray, seq_len: int, batch: int) -> float:
    """Mean next-byte cross entropy in bits over non-overlapping windows."""
    model.eval()
    n = (len(data) - 1) // seq_len
    x = torch.from_numpy(data[: n * seq_len].astype(np.int64)).view(n, seq_len)
    y = torch.from_numpy(data[1 : n * seq_len + 1].astype(np.int64)).view(n, seq_len)
    total, count = 0.0, 0
    for i in range(0, n, batch):
        logits = model(input_ids=x[i : i + batch]).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[i : i + batch].reshape(-1),
                                                 reduction="sum")
        total += loss.item()
        count += y[i : i + batch].numel()
    model.train()
    return total / count / math.log(2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA,
                    help="training text (default: ../shared/data/tinyshakespeare.txt)")
    ap.add_argument("--out", type=Path, required=True, help="output directory (config.json + model.safetensors)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=1600)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-every", type=int, default=400)
    args = ap.parse_args(argv)

    from transformers import Mamba2Config, Mamba2ForCausalLM

    if not args.data.is_file():
        print(f"error: training text not found: {args.data}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    train, held_out = split_bytes(args.data)

    model = Mamba2ForCausalLM(Mamba2Config(**SHAPE))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"parameters: {n_params}", flush=True)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95))
    warmup = max(1, args.steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return args.lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, args.steps - warmup)
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))

    model.train()
    t0 = time.time()
    for step in range(args.steps):
        starts = rng.integers(0, len(train) - args.seq_len - 1, size=args.batch)
        window = np.stack([train[s : s + args.seq_len + 1] for s in starts]).astype(np.int64)
        x = torch.from_numpy(window[:, :-1])
        y = torch.from_numpy(window[:, 1:])
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        logits = model(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step:5d}  loss {loss.item() / math.log(2):.3f} bits/byte  {time.time() - t0:7.1f}s",
                  flush=True)
        if args.eval_every and (step + 1) % args.eval_every == 0 and step + 1 < args.steps:
            print(f"  held-out (first 64 KiB) bits/byte {bits_per_byte(model, held_out[:65536], 256, 16):.3f}",
                  flush=True)

    bpb = bits_per_byte(model, held_out, 256, 16)
    print(f"final held-out bits/byte {bpb:.4f}  ({time.time() - t0:.0f}s)", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out)
    meta = {"seed": args.seed, "steps": args.steps, "batch": args.batch, "seq_len": args.seq_len, "lr": args.lr,
            "parameters": n_params, "held_out_bits_per_byte_at_training": round(bpb, 4)}
    (args.out / "training.json").write_text(json.dumps(meta, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
