"""The user registry file: models added with ``python -m core weights add``, as JSON.

It lives next to the weights (``<weights dir>/user_models.json``, so
``$DEEPFAKE_WEIGHTS_DIR`` moves both), the copied checkpoints under ``user/`` in that
directory, named by their SHA-256. This module only reads and writes the file; the
registry (core.detectors.registry) turns its entries into MODELS entries at load, and
core.detectors.user_weights adds, removes and verifies them.

    {"version": 1,
     "models": {"KEY": {"display_name": ..., "arch": ..., "config": {...},
                        "weights": "user/<sha256>.pt", "sha256": ..., "spoof_index": 1,
                        "provenance": ..., "card": "", "source": ..., "added": ...}},
     "retired": {"KEY": {"sha256": ..., "spoof_index": ..., "config": ..., "removed": ...}}}

``retired`` remembers removed keys: their results stay in the store under the key, so the
key may come back only with the same meaning (see core.detectors.user_weights.add_weights).
A file that cannot be read is an error naming it; nothing here ever deletes or rewrites
a file it could not parse, and entries it does not understand are written back as read.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from core.detectors.checkpoints import WeightsError

REGISTRY_NAME = "user_models.json"
USER_DIR = "user"  # copied checkpoints, cards and sidecars, under the weights directory
VERSION = 1
KEY_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")  # used in URLs, CLI args and file names

# entry field -> (type, required); spoof_index becomes ModelSpec.spoof_logit
ENTRY_FIELDS: dict[str, tuple[type | tuple[type, ...], bool]] = {
    "display_name": (str, True),
    "arch": (str, True),
    "config": (dict, True),
    "weights": (str, True),
    "sha256": (str, True),
    "spoof_index": (int, True),
    "provenance": (str, False),
    "how_to_get": (str, False),
    "card": (str, False),
    "hop": (int, False),
    "source": (str, False),
    "added": (str, False),
}


class UserRegistryError(WeightsError):
    """The user registry file is unreadable, or one of its entries is not usable."""


@dataclass
class UserRegistry:
    path: Path
    models: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> entry, as read
    retired: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"version": VERSION, "models": self.models, "retired": self.retired}


def registry_path(directory: Path) -> Path:
    return Path(directory) / REGISTRY_NAME


def read(directory: Path) -> UserRegistry:
    """The registry of a weights directory; empty when there is no file yet."""
    path = registry_path(directory)
    if not path.exists():
        return UserRegistry(path)
    fix = "user models are not loaded and nothing was changed; fix or move the file"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise UserRegistryError(f"user registry {path} cannot be read ({e}); {fix}") from e
    except ValueError as e:
        raise UserRegistryError(f"user registry {path} is not valid JSON ({e}); {fix}") from e
    if not isinstance(data, dict):
        raise UserRegistryError(f"user registry {path} is not a JSON object; {fix}")
    if data.get("version", VERSION) != VERSION:
        raise UserRegistryError(
            f"user registry {path} has version {data.get('version')!r}, this code reads "
            f"{VERSION}; {fix}"
        )
    models, retired = data.get("models", {}), data.get("retired", {})
    for name, part in (("models", models), ("retired", retired)):
        if not isinstance(part, dict) or not all(isinstance(v, dict) for v in part.values()):
            raise UserRegistryError(
                f"user registry {path}: {name!r} must map keys to objects; {fix}"
            )
    return UserRegistry(path, dict(models), dict(retired))


def spec_fields(reg: UserRegistry, key: str) -> dict[str, Any]:
    """ModelSpec keyword arguments of one entry; UserRegistryError naming what is wrong."""
    entry = reg.models[key]
    where = f"user registry {reg.path}: model {key!r}"
    if not KEY_RE.match(key):
        raise UserRegistryError(f"{where}: the key must match {KEY_RE.pattern}; not loaded")
    unknown = sorted(set(entry) - set(ENTRY_FIELDS))
    if unknown:
        raise UserRegistryError(f"{where}: unknown fields {', '.join(unknown)}; not loaded")
    for name, (kind, required) in ENTRY_FIELDS.items():
        if name not in entry:
            if required:
                raise UserRegistryError(f"{where}: no {name!r}; not loaded")
            continue
        value = entry[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise UserRegistryError(f"{where}: {name!r} has the wrong type; not loaded")
    if entry["spoof_index"] not in (0, 1):
        raise UserRegistryError(f"{where}: 'spoof_index' must be 0 or 1; not loaded")
    fields = {k: v for k, v in entry.items() if k != "spoof_index"}
    fields.setdefault("provenance", "")
    fields.setdefault("how_to_get", "")
    return {**fields, "spoof_logit": entry["spoof_index"]}


def load_entries(
    directory: Path, *, taken: set[str], archs: set[str]
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """
    (key -> ModelSpec keyword arguments, problems) of the usable entries. ``taken``: the
    built-in keys (a clash skips the entry), ``archs``: the registered architectures.
    An unreadable file gives no entries and one problem.
    """
    try:
        reg = read(directory)
    except UserRegistryError as e:
        return {}, [str(e)]
    entries, problems = {}, []
    for key in reg.models:
        where = f"user registry {reg.path}: model {key!r}"
        try:
            fields = spec_fields(reg, key)
        except UserRegistryError as e:
            problems.append(str(e))
            continue
        if key in taken:
            problems.append(f"{where} has the key of a built-in model; not loaded")
        elif fields["arch"] not in archs:
            problems.append(
                f"{where} has unknown arch {fields['arch']!r}; not loaded "
                f"(known: {', '.join(sorted(archs))})"
            )
        else:
            entries[key] = fields
    return entries, problems


def write(reg: UserRegistry) -> None:
    """Replace the file atomically (a reader sees the old or the new one, never half)."""
    reg.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = reg.path.with_name(f".{reg.path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(reg.to_json(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, reg.path)


@contextlib.contextmanager
def editing(directory: Path) -> Iterator[UserRegistry]:
    """
    Read, let the caller change, write back: under an exclusive lock, so two
    ``weights add`` at once do not lose an entry. Nothing is written when the block
    raises, or when the file could not be read in the first place.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / f".{REGISTRY_NAME}.lock", "a") as lock:
        with _locked(lock):
            reg = read(directory)
            yield reg
            write(reg)


@contextlib.contextmanager
def _locked(f) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # no advisory locks on this platform: the write is still atomic
        yield
        return
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(f, fcntl.LOCK_UN)
