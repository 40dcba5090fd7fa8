"""The identity of a stored row: verdict and explanation keys and the hash they make.

A key is the SHA-256 of the canonical JSON of every part that determines a result. The
engine (core.engine.keys) decides what those parts are for a model and a method; this
module only turns them into the store's primary key. The hashes are those the store has
used since schema 1, so older stores keep working.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np


def json_default(o: Any) -> Any:
    """json.dumps ``default``: numpy scalars and arrays, sets (sorted), paths."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON-serialisable")


def canonical_json(obj: Any) -> str:
    """Sorted keys, no spaces; NaN/inf refused (not valid JSON). What keys hash."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), default=json_default, allow_nan=False
    )


def cache_key(kind: str, **parts: Any) -> str:
    """sha256 of the canonical JSON of every part that determines a result."""
    return hashlib.sha256(canonical_json({"kind": kind, **parts}).encode()).hexdigest()


@dataclass(frozen=True)
class VerdictKey:
    audio_sha256: str
    model: str
    weights_sha256: str
    params: Mapping[str, Any] = field(hash=False)

    @property
    def key(self) -> str:
        return cache_key(
            "prediction",
            audio=self.audio_sha256,
            model=self.model,
            weights=self.weights_sha256,
            params=dict(self.params),
        )


@dataclass(frozen=True)
class ExplanationKey:
    audio_sha256: str
    model: str
    weights_sha256: str
    method: str
    method_version: str
    params: Mapping[str, Any] = field(hash=False)

    @property
    def key(self) -> str:
        return cache_key(
            "explanation",
            audio=self.audio_sha256,
            model=self.model,
            weights=self.weights_sha256,
            method=self.method,
            version=str(self.method_version),
            params=dict(self.params),
        )
