"""Checkpoint loading: a Mamba2 model in, a validated config and weights out.

Place in the flow: the entry of the compiler.  `load_model` accepts
  (a) a transformers `Mamba2ForCausalLM` object,
  (b) a directory in the layout transformers' `save_pretrained` writes
      (config.json with hidden_size/num_hidden_layers/..., model.safetensors
      or its sharded form model.safetensors.index.json, or pytorch_model.bin),
  (c) a directory in mamba_ssm's layout (config.json with d_model/n_layer/
      ssm_cfg, tensors `backbone.layers.N.mixer.*`, `backbone.embedding.weight`,
      optional `lm_head.weight`; model.safetensors or pytorch_model.bin),
and returns `(Mamba2Config, WeightStore)`.  The reference model, the frontend
and the passes read weights only through the `WeightStore`.

Canonical tensor names (transformers' names; `expected_shapes` lists them):
    backbone.embeddings.weight                 [vocab_size, d_model]
    backbone.layers.{i}.norm.weight            [d_model]
    backbone.layers.{i}.mixer.in_proj.weight   [in_proj_out, d_model]   rows: z | xBC | dt
    backbone.layers.{i}.mixer.conv1d.weight    [conv_dim, 1, d_conv]
    backbone.layers.{i}.mixer.conv1d.bias      [conv_dim]               (if use_conv_bias)
    backbone.layers.{i}.mixer.dt_bias          [nheads]
    backbone.layers.{i}.mixer.A_log            [nheads]
    backbone.layers.{i}.mixer.D                [nheads]
    backbone.layers.{i}.mixer.norm.weight      [d_inner]                gated RMSNorm
    backbone.layers.{i}.mixer.out_proj.weight  [d_model, d_inner]
    backbone.norm_f.weight                     [d_model]
    lm_head.weight                             [vocab_size, d_model]    only if not tied
With tied embeddings the head is `backbone.embeddings.weight` (see
`head_weight_name`); a `lm_head.weight` in a tied checkpoint is ignored, as
transformers and mamba_ssm do.

Tensors are read on access (safetensors files stay memory-mapped, torch
`.bin` files are loaded with mmap), in the dtype they are stored in, so a
large checkpoint is never copied whole.  Any missing, unexpected or
mis-shaped tensor, or an unsupported config value, raises `ModelError`.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from fastmamba.compiler.config import DEFAULT_MODEL_DIR, Mamba2Config
from fastmamba.isa.errors import InputError
from fastmamba.compiler.errors import ModelError
from fastmamba.isa.fileio import write_atomic

__all__ = [
    "DEFAULT_MODEL_DIR",
    "WeightStore",
    "load_model",
    "read_config",
    "expected_shapes",
    "head_weight_name",
    "save_hf_layout",
    "save_mamba_ssm_layout",
]


# mamba_ssm (and older transformers) spell the embedding without the "s".
_RENAMES = {"backbone.embedding.weight": "backbone.embeddings.weight"}
_MAMBA_SSM_NAMES = {v: k for k, v in _RENAMES.items()}

_SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def head_weight_name(config: Mamba2Config) -> str:
    """Name of the tensor the LM head multiplies by."""
    return "backbone.embeddings.weight" if config.tie_embeddings else "lm_head.weight"


def expected_shapes(config: Mamba2Config) -> dict[str, tuple[int, ...]]:
    """Every canonical tensor of a model with this config, with its shape."""
    c = config
    shapes: dict[str, tuple[int, ...]] = {"backbone.embeddings.weight": (c.vocab_size, c.d_model)}
    for i in range(c.n_layer):
        p = f"backbone.layers.{i}."
        shapes[p + "norm.weight"] = (c.d_model,)
        shapes[p + "mixer.in_proj.weight"] = (c.in_proj_out, c.d_model)
        shapes[p + "mixer.conv1d.weight"] = (c.conv_dim, 1, c.d_conv)
        if c.use_conv_bias:
            shapes[p + "mixer.conv1d.bias"] = (c.conv_dim,)
        shapes[p + "mixer.dt_bias"] = (c.nheads,)
        shapes[p + "mixer.A_log"] = (c.nheads,)
        shapes[p + "mixer.D"] = (c.nheads,)
        shapes[p + "mixer.norm.weight"] = (c.d_inner,)
        shapes[p + "mixer.out_proj.weight"] = (c.d_model, c.d_inner)
    shapes["backbone.norm_f.weight"] = (c.d_model,)
    if not c.tie_embeddings:
        shapes["lm_head.weight"] = (c.vocab_size, c.d_model)
    return shapes


class WeightStore(Mapping[str, torch.Tensor]):
    """Canonical name -> tensor, read from the checkpoint on each access.

    `shape(name)` and `dtype(name)` answer without reading the tensor.  The
    store holds only validated names: exactly `expected_shapes(config)`.
    """

    def __init__(self, entries: Mapping[str, tuple[tuple[int, ...], torch.dtype, Callable[[], torch.Tensor]]],
                 origin: str):
        self._entries = dict(entries)
        self.origin = origin  # where the weights come from, for messages

    def __getitem__(self, name: str) -> torch.Tensor:
        try:
            _, _, read = self._entries[name]
        except KeyError:
            raise KeyError(name) from None
        return read()

    def __contains__(self, name: object) -> bool:  # (Mapping's would read the tensor)
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._entries[name][0]

    def dtype(self, name: str) -> torch.dtype:
        return self._entries[name][1]


# --- readers: each returns {stored name: (shape, dtype, read)} -------------------------------------------------------


def _read_safetensors(path: Path) -> dict[str, tuple[tuple[int, ...], torch.dtype, Callable[[], torch.Tensor]]]:
    from safetensors import safe_open

    try:
        handle = safe_open(str(path), framework="pt")
        names = list(handle.keys())
        info = {}
        for name in names:
            sl = handle.get_slice(name)
            info[name] = (tuple(sl.get_shape()), sl.get_dtype())
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise ModelError(f"cannot read {path}: "
                         f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    del handle  # (its mapping of the file is not kept: a tensor read is a copy, its pages not held afterwards)
    spans = _safetensors_spans(path)
    entries = {}
    for name, (shape, dtype_name) in info.items():
        if dtype_name not in _SAFETENSORS_DTYPES:
            raise ModelError(f"tensor {name} in {path} has dtype {dtype_name}; a floating-point dtype is required")
        dtype = _SAFETENSORS_DTYPES[dtype_name]
        entries[name] = (shape, dtype, lambda shape=shape, dtype=dtype, span=spans[name]: _read_span(path, span,
                                                                                                      shape, dtype))
    return entries


def _safetensors_spans(path: Path) -> dict[str, tuple[int, int]]:
    """Each tensor's (file offset, byte count) from a safetensors header (8-byte little-endian header length, the
    JSON header, then the data; a tensor's data_offsets count from the data's start); safe_open checked it."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    return {name: (8 + length + d["data_offsets"][0], d["data_offsets"][1] - d["data_offsets"][0])
            for name, d in header.items() if name != "__metadata__"}


def _read_span(path: Path, span: tuple[int, int], shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """One tensor read from `path` into memory of its own (not a mapping of the file, whose pages would count
    in the compiler's resident memory as long as the file stays mapped)."""
    offset, nbytes = span
    data = torch.empty(nbytes, dtype=torch.uint8)
    view = data.numpy().data  # (a memoryview of the tensor's bytes)
    with open(path, "rb", buffering=0) as f:
        done = 0
        while done < nbytes:
            got = os.preadv(f.fileno(), [view[done:]], offset + done)
            if got <= 0:
                raise ModelError(f"cannot read tensor data of {path}: the file ends {nbytes - done} bytes early")
            done += got
    return data.view(dtype).reshape(shape)


def _read_sharded_safetensors(index: Path) -> dict:
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
        files = sorted(set(weight_map.values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelError(f"cannot read {index}: {exc}") from None
    entries = {}
    for file in files:
        shard = index.parent / file
        if not shard.is_file():
            raise ModelError(f"{index.name} names a missing shard: {shard}")
        entries.update(_read_safetensors(shard))
    return entries


def _read_torch_bin(path: Path) -> dict:
    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            state = torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) format cannot be mapped
    except Exception as exc:
        raise ModelError(f"cannot read {path}: "
                         f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path} does not hold a mapping of names to tensors")
    return {name: (tuple(t.shape), t.dtype, lambda t=t: t) for name, t in state.items()}


def _read_module(model: Any) -> dict:
    state = model.state_dict()
    return {name: (tuple(t.shape), t.dtype, lambda t=t: t.detach()) for name, t in state.items()}


# --- validation ---------------------------------------------------------------------------------------------------


def _canonical_store(config: Mamba2Config, stored: Mapping[str, tuple], origin: str) -> WeightStore:
    expected = expected_shapes(config)
    entries = {}
    for name, entry in stored.items():
        canonical = _RENAMES.get(name, name)
        if canonical == "lm_head.weight" and config.tie_embeddings:
            continue  # tied: the head is the embedding
        if canonical not in expected:
            raise ModelError(f"unexpected tensor {name} in {origin}")
        if canonical in entries:
            raise ModelError(f"tensor {canonical} appears twice in {origin}")
        shape, dtype, _ = entry
        if shape != expected[canonical]:
            raise ModelError(f"tensor {name} in {origin} has shape {list(shape)}, expected {list(expected[canonical])}")
        if not dtype.is_floating_point:
            raise ModelError(f"tensor {name} in {origin} has dtype {dtype}; a floating-point dtype is required")
        entries[canonical] = entry
    for name in expected:
        if name not in entries:
            raise ModelError(f"missing tensor {name} in {origin}")
    return WeightStore({name: entries[name] for name in expected}, origin)


def read_config(directory: str | os.PathLike) -> tuple[Mamba2Config, str]:
    """The config of a checkpoint directory and its layout ("transformers" or "mamba_ssm")."""
    directory = Path(directory)
    path = directory / "config.json"
    if not path.is_file():
        raise InputError(f"no config.json in model directory {directory}")
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise ModelError(f"{path} does not hold a JSON object")
    if "d_model" in raw or "ssm_cfg" in raw:
        return Mamba2Config.from_mamba_ssm_dict(raw), "mamba_ssm"
    if "hidden_size" in raw or raw.get("model_type") is not None:
        return Mamba2Config.from_transformers_dict(raw), "transformers"
    raise ModelError(f"{path} is neither a transformers Mamba2 config (hidden_size, ...) nor a mamba_ssm one (d_model, "
                     "...)")


def load_model(source: Any) -> tuple[Mamba2Config, WeightStore]:
    """Config and weights of a model directory or a transformers Mamba2ForCausalLM object."""
    if not isinstance(source, (str, os.PathLike)):
        if hasattr(source, "state_dict") and hasattr(source, "config") and hasattr(source.config, "to_dict"):
            config = Mamba2Config.from_transformers_dict(source.config.to_dict())
            return config, _canonical_store(config, _read_module(source), type(source).__name__)
        raise InputError(f"cannot load a model from a {type(source).__name__}: give a directory or a Mamba2ForCausalLM")
    directory = Path(source)
    if not directory.exists():
        raise InputError(f"model directory not found: {directory}")
    if not directory.is_dir():
        raise InputError(f"model path is not a directory: {directory}")
    config, _layout = read_config(directory)
    if (directory / "model.safetensors").is_file():
        weights_path = directory / "model.safetensors"
        stored = _read_safetensors(weights_path)
    elif (directory / "model.safetensors.index.json").is_file():
        weights_path = directory / "model.safetensors.index.json"
        stored = _read_sharded_safetensors(weights_path)
    elif (directory / "pytorch_model.bin").is_file():
        weights_path = directory / "pytorch_model.bin"
        stored = _read_torch_bin(weights_path)
    else:
        raise ModelError(f"no weights in {directory} (expected model.safetensors, model.safetensors.index.json or "
                         "pytorch_model.bin)")
    return config, _canonical_store(config, stored, str(weights_path))


# --- writers ------------------------------------------------------------------------------------------------------


def _tensors_to_save(config: Mamba2Config, weights: Mapping[str, torch.Tensor], rename: Mapping[str, str],
                     names: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
    """Private contiguous copies of the config's tensors (or of `names` of them) under their saved names."""
    out = {}
    for name in expected_shapes(config) if names is None else names:
        if name not in weights:
            raise ModelError(f"missing tensor {name}")
        # contiguous private copies: safetensors refuses shared or strided storage
        out[rename.get(name, name)] = weights[name].detach().contiguous().clone()
    return out


def save_hf_layout(config: Mamba2Config, weights: Mapping[str, torch.Tensor], directory: str | os.PathLike,
                   shard_bytes: int | None = None) -> Path:
    """Write config.json + model.safetensors as transformers' save_pretrained does.

    shard_bytes: instead, shards `model-0000k-of-0000n.safetensors` of at most that many bytes (a larger
    tensor alone in its shard) and `model.safetensors.index.json`, as save_pretrained(max_shard_size=...)
    does; `weights` is then read one shard at a time, so a model larger than memory can be written from a
    lazy mapping."""
    from safetensors.torch import save as save_safetensors

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cfg = {"architectures": ["Mamba2ForCausalLM"], **config.to_transformers_dict()}
    if shard_bytes is None:
        write_atomic(directory / "model.safetensors",
                     save_safetensors(_tensors_to_save(config, weights, {}), metadata={"format": "pt"}))
    else:
        _save_shards(config, weights, directory, shard_bytes)
    write_atomic(directory / "config.json", json.dumps(cfg, indent=2) + "\n")
    return directory


def _save_shards(config: Mamba2Config, weights: Mapping[str, torch.Tensor], directory: Path, shard_bytes: int) -> None:
    from safetensors.torch import save as save_safetensors

    written: list[Path] = []
    shard_of: dict[str, int] = {}
    shard: dict[str, torch.Tensor] = {}
    size = total = 0

    def flush() -> None:
        written.append(directory / f".shard-{len(written) + 1:05d}.tmp")
        write_atomic(written[-1], save_safetensors(shard, metadata={"format": "pt"}))
        shard_of.update({name: len(written) for name in shard})
        shard.clear()

    for name in expected_shapes(config):
        tensor = _tensors_to_save(config, weights, {}, names=(name,))[name]
        nbytes = tensor.numel() * tensor.element_size()
        if shard and size + nbytes > shard_bytes:
            flush()
            size = 0
        shard[name] = tensor
        size += nbytes
        total += nbytes
    flush()
    files = [f"model-{k:05d}-of-{len(written):05d}.safetensors" for k in range(1, len(written) + 1)]
    for path, file in zip(written, files):
        path.replace(directory / file)
    index = {"metadata": {"total_size": total}, "weight_map": {n: files[k - 1] for n, k in shard_of.items()}}
    write_atomic(directory / "model.safetensors.index.json", json.dumps(index, indent=2) + "\n")


def save_mamba_ssm_layout(config: Mamba2Config, weights: Mapping[str, torch.Tensor], directory: str | os.PathLike,
                          fmt: str = "safetensors") -> Path:
    """Write mamba_ssm's layout: config.json (MambaConfig) + model.safetensors or pytorch_model.bin.

    As `MambaLMHeadModel.save_pretrained` does, `lm_head.weight` is written
    even when tied (it is then the embedding).
    """
    from safetensors.torch import save as save_safetensors

    if fmt not in ("safetensors", "bin"):
        raise InputError(f"unknown weight format {fmt!r} (safetensors or bin)")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = _tensors_to_save(config, weights, _MAMBA_SSM_NAMES)
    if config.tie_embeddings:
        tensors["lm_head.weight"] = tensors["backbone.embedding.weight"].clone()
    if fmt == "safetensors":
        write_atomic(directory / "model.safetensors", save_safetensors(tensors, metadata={"format": "pt"}))
    else:
        tmp = directory / ".pytorch_model.bin.tmp"
        torch.save(tensors, tmp)
        os.replace(tmp, directory / "pytorch_model.bin")
    write_atomic(directory / "config.json", json.dumps(config.to_mamba_ssm_dict(), indent=2) + "\n")
    return directory
