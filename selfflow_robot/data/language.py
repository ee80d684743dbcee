"""Instruction -> 512-d language embedding for the policy and the world model.

RT-1 conditions on a 512-d USE-large embedding of the instruction. At inference we do not run
USE; instead `LanguageTable` maps every instruction seen in training (stored in the checkpoint's
`language_table.safetensors`) to its embedding. Unseen instructions go to a pluggable
`TextEncoder` through `EncoderFallback`, which maps the encoder's space to the table's:

- `mode="ridge"`: a ridge regression fitted on the table's (encoder(instruction), embedding)
  pairs, applied to the new instruction (works for any encoder width);
- `mode="nearest"`: the embedding of the known instruction whose encoding is most similar
  (cosine); the safe choice when the table has few instructions.

An unseen instruction with no encoder raises `UnknownInstructionError` listing close matches.
"""
from __future__ import annotations

import difflib
import json
import re
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import safetensors
import torch
from safetensors import safe_open
from safetensors.numpy import save as save_safetensors

from selfflow_robot.constants import TEXT_DIM
from selfflow_robot.errors import DataError, UserError, require
from selfflow_robot.files import atomic_write_bytes


class UnknownInstructionError(UserError, KeyError):
    """An instruction is not in the checkpoint's language table and no text encoder is configured."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


def normalize_instruction(text: str) -> str:
    """Canonical form for lookups: lower case, single spaces, no trailing punctuation."""
    text = re.sub(r"\s+", " ", text.strip().lower())
    return text.rstrip(" .!?")


@runtime_checkable
class TextEncoder(Protocol):
    """Anything that embeds a batch of strings as a float array `(N, D)`."""

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class LanguageTable:
    """Known instructions and their embeddings `(N, 512)`; lookup by normalised text."""

    def __init__(self, instructions: Sequence[str], embeddings: np.ndarray) -> None:
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or embeddings.shape[0] != len(instructions):
            raise DataError(f"language table: {len(instructions)} instructions but embeddings of shape "
                            f"{embeddings.shape}; expected ({len(instructions)}, D)")
        self.instructions = list(instructions)
        self.embeddings = embeddings
        self._index = {normalize_instruction(s): i for i, s in enumerate(self.instructions)}

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    def __len__(self) -> int:
        return len(self.instructions)

    def __contains__(self, text: str) -> bool:
        return normalize_instruction(text) in self._index

    def get(self, text: str) -> np.ndarray | None:
        """The embedding `(D,)` of `text`, or None if it is not in the table."""
        i = self._index.get(normalize_instruction(text))
        return None if i is None else self.embeddings[i]

    def close_matches(self, text: str, n: int = 5) -> list[str]:
        """Known instructions that look like `text` (difflib ratio), best first."""
        keys = list(self._index)
        hits = difflib.get_close_matches(normalize_instruction(text), keys, n=n, cutoff=0.4)
        return [self.instructions[self._index[h]] for h in hits]

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any]) -> LanguageTable:
        """From `{instruction: embedding (D,)}` (numpy or torch values)."""
        names = list(table)
        if not names:
            return cls([], np.zeros((0, TEXT_DIM), np.float32))
        rows = [np.asarray(_numpy(table[n]), np.float32).reshape(-1) for n in names]
        return cls(names, np.stack(rows))

    @classmethod
    def coerce(cls, obj: Any) -> LanguageTable:
        """Accept a `LanguageTable`, a mapping, an object with `instructions`/`embeddings`, or a file path."""
        if isinstance(obj, LanguageTable):
            return obj
        if isinstance(obj, (str, Path)):
            return cls.load(obj)
        if hasattr(obj, "instructions") and hasattr(obj, "embeddings"):
            return cls(list(obj.instructions), _numpy(obj.embeddings))
        if isinstance(obj, Mapping):
            return cls.from_mapping(obj)
        raise TypeError(f"cannot build a LanguageTable from {type(obj).__name__}")

    @classmethod
    def load(cls, path: str | Path) -> LanguageTable:
        """Read a `language_table.safetensors` file (`load_language_table`)."""
        return cls.from_mapping(load_language_table(path))

    def save(self, path: str | Path) -> None:
        """Write the table as `language_table.safetensors` (`save_language_table`)."""
        save_language_table(dict(zip(self.instructions, self.embeddings)), path)


def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        return x.detach().cpu().float().numpy()
    return np.asarray(x)


class EncoderFallback:
    """Embeds unseen instructions with a `TextEncoder`, mapped into the table's embedding space."""

    def __init__(self, encoder: TextEncoder, table: LanguageTable, mode: Literal["ridge", "nearest"] = "nearest",
                 ridge: float = 1e-2) -> None:
        if mode not in ("ridge", "nearest"):
            raise ValueError(f"mode must be 'ridge' or 'nearest', got {mode!r}")
        if len(table) == 0:
            raise DataError("the language table is empty: a text encoder needs known instructions to map from")
        self.encoder, self.table, self.mode = encoder, table, mode
        keys = np.asarray(encoder.encode(table.instructions), np.float64)  # (N, E)
        self._keys = keys / np.maximum(np.linalg.norm(keys, axis=1, keepdims=True), 1e-12)
        if mode == "ridge":
            # W = argmin |[K 1] W - Y|^2 + ridge |W|^2, solved in the dual when N < E.
            x = np.concatenate([self._keys, np.ones((len(keys), 1))], axis=1)
            y = table.embeddings.astype(np.float64)
            gram = x @ x.T + ridge * np.eye(len(x))
            self._w = x.T @ np.linalg.solve(gram, y)  # (E + 1, D)

    def __call__(self, text: str) -> np.ndarray:
        q = np.asarray(self.encoder.encode([text]), np.float64)[0]
        q = q / max(float(np.linalg.norm(q)), 1e-12)
        if self.mode == "nearest":
            return self.table.embeddings[int(np.argmax(self._keys @ q))].copy()
        return (np.append(q, 1.0) @ self._w).astype(np.float32)


class InstructionEmbedder:
    """The policy's language front end: table lookup first, then the optional encoder fallback."""

    def __init__(self, table: LanguageTable, encoder: TextEncoder | None = None,
                 mode: Literal["ridge", "nearest"] = "nearest") -> None:
        self.table = table
        self.fallback = EncoderFallback(encoder, table, mode) if encoder is not None else None
        self._cache: dict[str, np.ndarray] = {}

    def __call__(self, text: str) -> np.ndarray:
        """Embedding `(D,)` float32 for `text`; raises `UnknownInstructionError` if it cannot."""
        hit = self.table.get(text)
        if hit is not None:
            return hit
        key = normalize_instruction(text)
        if key in self._cache:
            return self._cache[key]
        if self.fallback is None:
            close = self.table.close_matches(text)
            listed = "; ".join(repr(c) for c in close) if close else "(none close)"
            raise UnknownInstructionError(
                f"instruction {text!r} is not in the checkpoint's language table ({len(self.table)} known "
                f"instructions). Close known instructions: {listed}. Fix: use one of them, or pass a text "
                "encoder (SelfFlowPolicy.from_pretrained(..., text_encoder='/local/dir/of/a/hf/text/model'))")
        self._cache[key] = self.fallback(text)
        return self._cache[key]


class HashingTextEncoder:
    """A dependency-free bag-of-words encoder (hashed unigrams + bigrams): good for `nearest` matching
    of rephrasings such as "open the top drawer" -> "open top drawer"."""

    def __init__(self, dim: int = 1024) -> None:
        self.dim = dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            words = normalize_instruction(t).split()
            for tok in words + [" ".join(p) for p in zip(words, words[1:])]:
                out[i, zlib.crc32(tok.encode()) % self.dim] += 1.0
        return out


class HFTextEncoder:
    """A Hugging Face encoder (e.g. a sentence-transformers model) from a local directory.

    Mean-pools the last hidden state over non-padding tokens. `transformers` is imported lazily
    (`pip install transformers`); nothing is downloaded unless `path` is a hub id and you are online.
    """

    def __init__(self, path: str | Path, device: str = "cpu", max_length: int = 64) -> None:
        transformers = require("transformers", "vae")
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(path))
        self.model = transformers.AutoModel.from_pretrained(str(path)).to(device).eval()
        self.device, self.max_length = device, max_length

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        tok = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt").to(self.device)
        with torch.no_grad():
            h = self.model(**tok).last_hidden_state  # (N, L, E)
        mask = tok["attention_mask"].unsqueeze(-1).to(h.dtype)
        return ((h * mask).sum(1) / mask.sum(1).clamp_min(1)).cpu().float().numpy()


# ------------------------------------------------------------------ the file format (one writer, one reader)


def save_language_table(table: Mapping[str, Any], path: str | Path) -> None:
    """Write instruction -> embedding (numpy or torch values) as safetensors, atomically: one `embeddings`
    tensor `(N, D)` float32, the instruction list (JSON) in the metadata under `instructions`."""
    names = sorted(table)
    emb = (np.stack([np.asarray(_numpy(table[n]), np.float32).reshape(-1) for n in names]) if names
           else np.zeros((0, TEXT_DIM), np.float32))
    atomic_write_bytes(path, save_safetensors({"embeddings": np.ascontiguousarray(emb)},
                                              metadata={"instructions": json.dumps(names)}))


def load_language_table(path: str | Path) -> dict[str, np.ndarray]:
    """Read `save_language_table`'s file back as {instruction: (D,) float32}; a clear `DataError` when the
    file is missing or was not written by selfflow-robot."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no language table; it is written with the dataset statistics "
                        "(`selfflow-robot data stats`) and into every checkpoint")
    try:
        with safe_open(str(p), framework="numpy") as f:
            meta = f.metadata() or {}
            if "instructions" not in meta or "embeddings" not in f.keys():
                raise DataError(f"{p}: no 'embeddings' tensor / 'instructions' metadata; "
                                "it was not written by selfflow-robot")
            names, emb = json.loads(meta["instructions"]), f.get_tensor("embeddings")
    except (OSError, ValueError, safetensors.SafetensorError) as e:
        raise DataError(f"{p}: not a readable language table ({e})") from e
    if len(names) != len(emb):
        raise DataError(f"{p}: {len(names)} instructions but {len(emb)} embeddings; the file is corrupt")
    return {n: emb[i] for i, n in enumerate(names)}
