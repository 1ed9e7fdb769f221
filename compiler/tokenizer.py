"""Text <-> token ids for the models fastmamba runs.

Place in the flow: beside the reference model, used by `fastmamba generate`,
`fastmamba eval` and `fastmamba run`.  A model directory with a
`tokenizer.json` uses it (through the `tokenizers` package); otherwise the
model must be byte-level: token id = byte value (0..255), which needs a
vocabulary of 256 up to 512 entries (a byte vocabulary, perhaps padded or
with a few special tokens).  The bundled model is byte-level.

A model's vocabulary may hold ids its tokenizer cannot render (a byte-level
model's ids 256 and up; a tokenizer.json smaller than a padded vocabulary):
UNRENDERABLE states the one rule `run`, `generate` and `demo` follow for them
(they are never chosen, `allowed_ids`); should such an id reach a tokenizer
anyway, it is shown as `<|id|>`, never dropped.
"""

from __future__ import annotations

import codecs
from pathlib import Path

from fastmamba.compiler.config import Mamba2Config
from fastmamba.isa.errors import InputError
from fastmamba.compiler.errors import ModelError

__all__ = ["ByteTokenizer", "JsonTokenizer", "load_tokenizer", "allowed_ids", "BYTE_VOCAB_MAX", "UNRENDERABLE"]

BYTE_VOCAB_MAX = 512  # largest vocabulary taken as byte-level when there is no tokenizer.json

UNRENDERABLE = ("Token ids the tokenizer cannot render (a byte-level model's ids 256 and up, when its vocabulary is "
                "larger) are never chosen: sampling draws among the others, and --greedy takes the most likely of "
                "them.")
"""The rule for ids outside the tokenizer, quoted in the --help of run, generate and demo and in the README."""


def visible(token: int) -> str:
    """How an id the tokenizer cannot render is shown, should one reach it: `<|300|>`."""
    return f"<|{token}|>"


class ByteTokenizer:
    """UTF-8 bytes as tokens: "é" -> [195, 169]."""

    is_byte_level = True
    n_tokens = 256  # ids a text can map to; a larger model vocabulary has ids no text produces

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: list[int]) -> str:
        stream = self.stream()
        return "".join(stream.feed(i) for i in ids) + stream.flush()

    def stream(self) -> "_ByteStream":
        """An incremental decoder: feed ids one by one, get text as soon as characters complete."""
        return _ByteStream()


class _ByteStream:
    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, token: int) -> str:
        if 0 <= token < 256:
            return self._decoder.decode(bytes([token]))
        return self.flush() + visible(token)  # a partial character before it is complete as it will ever be

    def flush(self) -> str:
        return self._decoder.decode(b"", final=True)


class JsonTokenizer:
    """A `tokenizers` tokenizer.json (no special tokens added)."""

    is_byte_level = False

    def __init__(self, path: Path):
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise ModelError(f"{path} needs the `tokenizers` package (pip install tokenizers)") from None
        try:
            self._tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises plain Exception subclasses for bad files
            raise ModelError(f"cannot read tokenizer {path}: "
                             f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        self.n_tokens = self._tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        if all(0 <= i < self.n_tokens for i in ids):
            return self._tok.decode(list(ids), skip_special_tokens=False)
        stream = self.stream()
        return "".join(stream.feed(i) for i in ids) + stream.flush()

    def stream(self) -> "_JsonStream":
        return _JsonStream(self)


class _JsonStream:
    """Decodes the growing id list and emits the new suffix once it no longer ends in a partial character."""

    def __init__(self, tok: JsonTokenizer) -> None:
        self._tok, self._ids, self._emitted = tok, [], ""

    def feed(self, token: int) -> str:
        if not 0 <= token < self._tok.n_tokens:
            return self.flush() + visible(token)
        self._ids.append(token)
        text = self._tok.decode(self._ids)
        if text.endswith("\ufffd") or not text.startswith(self._emitted):
            return ""
        new, self._emitted = text[len(self._emitted):], text
        return new

    def flush(self) -> str:
        text = self._tok.decode(self._ids)
        new = text[len(self._emitted):] if text.startswith(self._emitted) else ""
        self._emitted = text
        return new


def load_tokenizer(config: Mamba2Config, model_dir: str | Path | None = None) -> ByteTokenizer | JsonTokenizer:
    """The tokenizer of a model: its directory's tokenizer.json, else bytes."""
    if model_dir is not None and (Path(model_dir) / "tokenizer.json").is_file():
        tok = JsonTokenizer(Path(model_dir) / "tokenizer.json")
        if tok.n_tokens > config.vocab_size:
            raise ModelError(f"tokenizer.json has {tok.n_tokens} tokens but the model's vocab_size is "
                             f"{config.vocab_size}")
        return tok
    if not 256 <= config.vocab_size <= BYTE_VOCAB_MAX:
        where = f"in {model_dir} " if model_dir is not None else ""
        raise ModelError(f"no tokenizer.json {where}and vocab_size={config.vocab_size} is not a byte vocabulary "
                         f"(256..{BYTE_VOCAB_MAX}); put the model's tokenizer.json beside its config.json")
    return ByteTokenizer()


def allowed_ids(tokenizer: ByteTokenizer | JsonTokenizer, config: Mamba2Config) -> int:
    """Ids below this are the ones a model may choose (UNRENDERABLE): those both the model and the tokenizer know."""
    return min(tokenizer.n_tokens, config.vocab_size)


def check_ids(ids: list[int], config: Mamba2Config, what: str) -> None:
    """InputError if an id is outside the model's vocabulary."""
    bad = [i for i in ids if not 0 <= i < config.vocab_size]
    if bad:
        raise InputError(f"{what} has token id {bad[0]} outside the model's vocabulary of {config.vocab_size}")
