"""Checkpoint files: hashing, reading any usual training checkpoint into a state dict of
our parameter names, checking that it fits a network exactly, and installing published
files. Knows nothing of the registry: callers pass the architecture's rename rules and
the specs to install.

    state = read_checkpoint(path)                    # torch.load(weights_only=True) only
    state = normalise(state, renames=arch.key_renames)
    net.load_state_dict(fit(net, state, arch="tssd1d", source=path), strict=True)

``normalise`` accepts a bare state dict or one under the usual training wrappers
(``state_dict`` as PyTorch Lightning saves it, ``model_state_dict`` as the Res-TSSDNet
reference code saves it, ``model`` as ``core.training.train``'s resumable checkpoint holds it),
strips the ``module.`` prefix of DataParallel / DistributedDataParallel and the
``_orig_mod.`` prefix of ``torch.compile``, then applies the architecture's renames
(published parameter names -> ours). Every error is one line naming the file.
"""

from __future__ import annotations

import hashlib
import pickle
import re
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Iterable

import torch
import torch.nn as nn

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")  # tried in this order
WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DataParallel / DDP, torch.compile
SHOWN_KEYS = 3  # parameter names quoted in a mismatch message, per kind
PICKLE_PROTOCOL_WARNING = r"Detected pickle protocol"  # torch's UserWarning, silenced


class WeightsError(RuntimeError):
    """Weights missing or not the expected file; str() names the file and the fix."""


class CheckpointError(WeightsError):
    """A file that is not a usable checkpoint, or does not fit the architecture."""


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _first_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return f"{type(e).__name__}: {lines[0][:120]}" if lines else type(e).__name__


def read_checkpoint(path: Path) -> object:
    """torch.load(weights_only=True) of any file, with a one-line error for non-checkpoints."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():
            # torch warns about a pickle protocol it did not write before it refuses
            # or reads the file; the refusal below already says what the file is
            warnings.filterwarnings("ignore", message=PICKLE_PROTOCOL_WARNING)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: not a state-dict checkpoint: torch.load(weights_only=True) refused "
            "it (a pickled model object, or not a PyTorch file at all); save "
            "model.state_dict() with torch.save"
        ) from e
    except Exception as e:  # torch.load raises many types on foreign bytes
        raise CheckpointError(
            f"{path}: not a PyTorch checkpoint (torch.load: {_first_line(e)})"
        ) from e


def _is_state_dict(obj: object) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _describe(obj: object) -> str:
    if isinstance(obj, Mapping):
        keys = [str(k) for k in list(obj)[:5]]
        more = f", +{len(obj) - 5} more" if len(obj) > 5 else ""
        return f"a dict with keys {', '.join(keys) or '(none)'}{more}"
    return f"a {type(obj).__name__}"


def unwrap(obj: object, source: Path | str = "checkpoint") -> dict[str, torch.Tensor]:
    """the state dict in a bare state dict or under WRAPPER_KEYS (up to two levels)"""
    inner = obj
    for _ in range(3):
        if _is_state_dict(inner):
            return dict(inner)
        if not isinstance(inner, Mapping):
            break
        key = next((k for k in WRAPPER_KEYS if isinstance(inner.get(k), Mapping)), None)
        if key is None:
            break
        inner = inner[key]
    raise CheckpointError(
        f"{source}: not a checkpoint: {_describe(obj)}; expected a state dict of "
        f"tensors, or one under {', '.join(repr(k) for k in WRAPPER_KEYS)}"
    )


def strip_prefixes(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """drop WRAPPER_PREFIXES that every key carries (repeatedly: DDP of a compiled net)"""
    out = dict(state)
    changed = True
    while changed:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if out and all(k.startswith(prefix) for k in out):
                out = {k[len(prefix) :]: v for k, v in out.items()}
                changed = True
    return out


def rename(
    state: Mapping[str, torch.Tensor],
    rules: Iterable[tuple[str, str]],
    source: Path | str = "checkpoint",
) -> dict[str, torch.Tensor]:
    """apply (regex, replacement) rules, in order, to every key; collisions are errors"""
    rules = [(re.compile(pattern), repl) for pattern, repl in rules]
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new = key
        for pattern, repl in rules:
            new = pattern.sub(repl, new)
        if new in out:
            raise CheckpointError(f"{source}: two parameters map to the name {new!r}")
        out[new] = value
    return out


def normalise(
    obj: object,
    *,
    renames: Iterable[tuple[str, str]] = (),
    source: Path | str = "checkpoint",
) -> Mapping[str, torch.Tensor]:
    """
    A loaded checkpoint -> a state dict in our parameter names. A bare state dict that
    needs no change is returned as it is (with its version metadata).
    """
    state = unwrap(obj, source)
    state = rename(strip_prefixes(state), renames, source)
    if isinstance(obj, Mapping) and list(state) == list(obj):
        return obj  # type: ignore[return-value]
    return state


def _names(keys: list[str]) -> str:
    shown = ", ".join(keys[:SHOWN_KEYS])
    return shown + (f" (+{len(keys) - SHOWN_KEYS} more)" if len(keys) > SHOWN_KEYS else "")


def mismatch(net: nn.Module, state: Mapping[str, torch.Tensor]) -> str:
    """'' when the state fits the network exactly (keys and shapes), else why not"""
    expected = net.state_dict()
    # checkpoints from before PyTorch 0.4.1 have no BatchNorm counters; torch fills them
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    parts = []
    if missing:
        parts.append(f"missing keys {_names(missing)}")
    if unexpected:
        parts.append(f"unexpected keys {_names(unexpected)}")
    if shapes:
        parts.append(f"shape mismatch {_names(shapes)}")
    return "; ".join(parts)


def fit(
    net: nn.Module, state: Mapping[str, torch.Tensor], *, arch: str, source: Path | str
) -> Mapping[str, torch.Tensor]:
    """the state, ready for net.load_state_dict(strict=True); CheckpointError if not"""
    problem = mismatch(net, state)
    if problem:
        raise CheckpointError(f"{source} does not fit arch {arch!r}: {problem}")
    missing = [k for k in net.state_dict() if k not in state]
    if missing:  # only BatchNorm counters (see mismatch): start them at zero
        state = {**state, **{k: torch.tensor(0, dtype=torch.long) for k in missing}}
    return state


def install_verified(
    files: list[tuple[str, str]],
    dest_dir: Path,
    *,
    source_dir: Path | None = None,
    url_template: str = "",
) -> list[Path]:
    """
    Copy (from ``source_dir``) or download (``url_template.format(file=name)``) each
    (file name, SHA-256) into dest_dir; a file whose hash differs is removed and
    nothing of it is installed.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    installed = []
    for name, sha256 in files:
        dest = dest_dir / name
        tmp = dest.with_suffix(dest.suffix + ".part")
        if source_dir is not None:
            src = Path(source_dir) / name
            if not src.exists():
                raise WeightsError(f"{src} not found (expected {name} in {source_dir})")
            shutil.copyfile(src, tmp)
        else:
            import urllib.request

            url = url_template.format(file=name)
            try:
                urllib.request.urlretrieve(url, tmp)
            except OSError as e:
                raise WeightsError(
                    f"could not download {url}: {e}; copy the file by hand and use --from DIR"
                ) from e
        actual = file_sha256(tmp)
        if actual != sha256:
            tmp.unlink()
            raise WeightsError(
                f"{name}: SHA-256 {actual[:12]}... does not match the published "
                f"{sha256[:12]}...; nothing installed"
            )
        tmp.replace(dest)
        installed.append(dest)
    return installed
