"""Bring your own detector: add, remove and verify user models (``python -m core weights``).

``add_weights`` reads any usual training checkpoint (core.detectors.checkpoints: torch.load with
weights_only only), proves that it loads with strict=True into the chosen architecture,
copies it under the weights directory named by its SHA-256 (``user/<sha256>.pt``) and
records it in the user registry (core.detectors.user_registry); from then on it is an ordinary
MODELS entry. A training sidecar beside the file (``NAME.json`` written by
``python -m core train``, whose sha256 is the file's) becomes its provenance and its card.

    spec = add_weights("my-tssd", arch="tssd1d", file=Path("runs/best.pt"))
    remove_weights("my-tssd")            # the store keeps every result of it
    checks, problems = verify_weights()  # re-hash every weights file
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from core.detectors import user_registry
from core.detectors.checkpoints import (
    CheckpointError,
    WeightsError,
    file_sha256,
    fit,
    mismatch,
    normalise,
    read_checkpoint,
)
from core.detectors.registry import (
    ARCHS,
    MODELS,
    ModelSpec,
    register_model,
    weights_dir,
    weights_status,
)
from core.detectors.user_registry import KEY_RE, USER_DIR


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def check_key(key: str, directory: Path | None = None) -> None:
    """WeightsError unless ``key`` is free: well-formed, no model has it, registry readable."""
    if not KEY_RE.match(key or ""):
        raise WeightsError(
            f"model key {key!r}: use 1-64 lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    if key in MODELS:
        kind = "a user model" if MODELS[key].origin == "user" else "a built-in model"
        raise WeightsError(f"model key {key!r} is taken by {kind}; choose another key")
    reg = user_registry.read(directory or weights_dir())  # an unreadable file: its error
    if key in reg.models:
        raise WeightsError(f"model key {key!r} is already in {reg.path}; choose another key")


def read_sidecar(path: Path, sha256: str) -> dict | None:
    """the training sidecar NAME.json beside NAME.pt when it describes these bytes"""
    side = Path(path).with_suffix(".json")
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("sha256") == sha256 else None


def sidecar_provenance(meta: dict) -> str:
    data = meta.get("data") or {}
    counts = data.get("train_counts") or {}
    eer = meta.get("dev_eer")
    eer_text = "no dev EER"
    if isinstance(eer, (int, float)):
        eer_text = f"best dev EER {100 * eer:.2f} % at epoch {meta.get('best_epoch')}"
    return (
        f"trained with `python -m core train --arch {meta.get('arch')}` on "
        f"{data.get('train_protocol', '?')} ({counts.get('bonafide', '?')} bona fide, "
        f"{counts.get('spoof', '?')} spoof); {meta.get('epochs_done', '?')} of "
        f"{meta.get('epochs', '?')} epochs; {eer_text} (dev: {data.get('dev_protocol', '?')})"
    )


def sidecar_card(meta: dict, *, title: str) -> str:
    """a model card (markdown) from a training sidecar"""
    data, recipe = meta.get("data") or {}, meta.get("recipe") or {}
    init = meta.get("init") or {}
    lines = [
        f"# {title}",
        "",
        "Trained with this project's `python -m core train`; everything below is from "
        "its sidecar.",
        "",
        f"- architecture: `{meta.get('arch')}`, config `{json.dumps(meta.get('config'))}`",
        f"- training data: {data.get('train_protocol')} {data.get('train_counts')}",
    ]
    lines += [f"- extra training data: {e['protocol']}" for e in data.get("extra_train") or []]
    lines += [
        f"- dev data (model selection): {data.get('dev_protocol')} {data.get('dev_counts')}",
        f"- initialised from: {init.get('path')} (SHA-256 {init.get('sha256')})"
        if init
        else "- initialised from: random",
        f"- epochs: {meta.get('epochs_done')} of {meta.get('epochs')}, best epoch "
        f"{meta.get('best_epoch')}",
        f"- dev EER: {meta.get('dev_eer')}, dev loss {meta.get('dev_loss')}",
        "- recipe: " + "; ".join(f"{k} {v}" for k, v in recipe.items()),
        f"- weights SHA-256: {meta.get('sha256')}",
        f"- command: `{meta.get('command')}`",
        f"- code revision {meta.get('code_revision')}, torch {meta.get('torch')}, "
        f"device {meta.get('device')}",
        "",
        "The dev EER is on the dev protocol above only: it says nothing about other data.",
    ]
    return "\n".join(lines) + "\n"


def _fits_elsewhere(state, arch: str) -> list[str]:
    """the other architectures (default configs) this state dict fits exactly"""
    out = []
    for key, a in ARCHS.items():
        if key == arch:
            continue
        try:
            s = normalise(state, renames=a.key_renames)
            if not mismatch(a.build(a.default_config), s):
                out.append(key)
        except (CheckpointError, TypeError, ValueError):
            continue
    return out


def _arch_config(arch: str, config: dict | None) -> dict:
    a = ARCHS[arch]
    config = dict(config or {})
    unknown = sorted(set(config) - set(a.default_config))
    if unknown:
        takes = ", ".join(a.default_config) or "no config"
        raise WeightsError(
            f"arch {arch!r}: unknown config keys {', '.join(unknown)} (it takes {takes})"
        )
    return {**a.default_config, **config}


def _store_file(src: Path, dest: Path, sha256: str) -> None:
    """copy src to dest only when the copy's SHA-256 is the one src was read with"""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part")
    shutil.copyfile(src, tmp)
    if file_sha256(tmp) != sha256:  # src changed while it was being read
        tmp.unlink()
        raise WeightsError(f"{src} changed while it was being added; nothing added")
    tmp.replace(dest)


def _store_text(text: str, directory: Path, suffix: str) -> str:
    """write text under user/ named by its SHA-256; returns the name under directory"""
    name = f"{USER_DIR}/{hashlib.sha256(text.encode()).hexdigest()}{suffix}"
    path = directory / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return name


def add_weights(
    key: str,
    *,
    arch: str,
    file: str | Path,
    name: str | None = None,
    provenance: str | None = None,
    card: str | Path | None = None,
    spoof_index: int | None = None,
    config: dict | None = None,
    directory: Path | None = None,
) -> ModelSpec:
    """
    Register ``file`` as model ``key`` of architecture ``arch``; returns its spec, now in
    MODELS. Raises WeightsError (CheckpointError for a file that is not a checkpoint or
    does not fit), one line each, before anything is copied or recorded.
    """
    directory = Path(directory or weights_dir())
    source = Path(file)
    if arch not in ARCHS:
        raise WeightsError(f"unknown arch {arch!r}; known: {', '.join(ARCHS)}")
    if spoof_index not in (None, 0, 1):
        raise WeightsError(f"spoof index must be 0 or 1, not {spoof_index!r}")
    cfg = _arch_config(arch, config)
    check_key(key, directory)
    sha = file_sha256(source) if source.is_file() else ""
    state = read_checkpoint(source)  # one-line error for anything but a checkpoint
    a = ARCHS[arch]
    try:
        net = a.build(cfg)
    except (TypeError, ValueError) as e:
        raise WeightsError(f"arch {arch!r} cannot be built with config {cfg}: {e}") from e
    try:
        net.load_state_dict(fit(net, normalise(state, renames=a.key_renames, source=source),
                                arch=arch, source=source), strict=True)  # fmt: skip
    except CheckpointError as e:
        others = _fits_elsewhere(state, arch)
        hint = f"; it fits --arch {' or '.join(others)}" if others else ""
        raise CheckpointError(f"{e}{hint}") from e
    except RuntimeError as e:  # load_state_dict's own refusal, e.g. a dtype it cannot cast
        raise CheckpointError(f"{source} does not load into arch {arch!r}: {e}") from e
    meta = read_sidecar(source, sha)
    if meta is not None and meta.get("arch") not in (None, arch):
        raise WeightsError(f"{source}: its sidecar says arch {meta['arch']!r}, not {arch!r}")
    if spoof_index is None:
        spoof_index = int(meta.get("spoof_index", a.spoof_index)) if meta else a.spoof_index
    display = name or f"{key} (user, {arch})"
    card_text = Path(card).read_text(encoding="utf-8") if card is not None else None

    with user_registry.editing(directory) as reg:
        if key in reg.models:  # added by someone else since check_key
            raise WeightsError(f"model key {key!r} is already in {reg.path}; choose another key")
        old = reg.retired.get(key)
        if old and old.get("sha256") == sha and (
            old.get("spoof_index"), old.get("config")) != (spoof_index, cfg):  # fmt: skip
            raise WeightsError(
                f"model key {key!r} was used before for these weights with spoof index "
                f"{old.get('spoof_index')} and config {old.get('config')}; its results are "
                "still in the history under that key, so choose another key"
            )
        weights = f"{USER_DIR}/{sha}.pt"
        _store_file(source, directory / weights, sha)
        card_name = ""
        if card_text is not None:
            card_name = _store_text(card_text, directory, ".md")
        elif meta is not None:
            card_name = _store_text(sidecar_card(meta, title=display), directory, ".md")
        if meta is not None:  # beside the copy: core.engine.cards reads its measured EER there
            side = (directory / weights).with_suffix(".json")
            side.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        reg.models[key] = {
            "display_name": display,
            "arch": arch,
            "config": cfg,
            "weights": weights,
            "sha256": sha,
            "spoof_index": int(spoof_index),
            "provenance": provenance
            or (sidecar_provenance(meta) if meta else f"added by the user from {source.name}"),
            "how_to_get": f"re-add it: python -m core weights remove {key} --yes, then "
            f"python -m core weights add {key} --arch {arch} --file {source.resolve()}",
            "card": card_name,
            "source": str(source.resolve()),
            "added": _now(),
        }
        reg.retired.pop(key, None)
        fields = user_registry.spec_fields(reg, key)
    return register_model(ModelSpec(key=key, origin="user", **fields))


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def remove_weights(key: str, *, directory: Path | None = None) -> list[Path]:
    """
    Unregister user model ``key`` and delete its copied files that no other user model
    uses; returns the deleted paths. Stored verdicts and explanations are not touched:
    they stay in the history under the key.
    """
    directory = Path(directory or weights_dir())
    spec = MODELS.get(key)
    if spec is not None and spec.origin != "user":
        raise WeightsError(
            f"model {key!r} is built in (core/detectors/registry.py); only user models can be removed"
        )
    with user_registry.editing(directory) as reg:
        if key not in reg.models:
            known = ", ".join(reg.models) or "none"
            raise WeightsError(f"no user model {key!r} in {reg.path} (user models: {known})")
        entry = reg.models.pop(key)
        reg.retired[key] = {
            "sha256": entry.get("sha256"),
            "spoof_index": entry.get("spoof_index"),
            "config": entry.get("config"),
            "removed": _now(),
        }
        used = {e.get(f) for e in reg.models.values() for f in ("weights", "card")}
        names = [entry.get("weights"), entry.get("card")]
        if entry.get("weights"):
            names.append(str(Path(entry["weights"]).with_suffix(".json")))
        doomed = [
            directory / n
            for n in names
            if n and n not in used and _inside(directory / n, directory / USER_DIR)
        ]
    if spec is not None:
        MODELS.pop(key, None)
    deleted = [p for p in doomed if p.exists()]
    for p in deleted:
        p.unlink()
    return deleted


@dataclass(frozen=True)
class WeightsCheck:
    key: str
    origin: str  # "built-in" | "user"
    path: Path
    status: str  # "ok" | "checksum mismatch" | "missing" | "not installed" (built-in)

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "not installed")

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "origin": self.origin, "path": str(self.path),
                "status": self.status, "ok": self.ok}  # fmt: skip


def verify_weights(directory: Path | None = None) -> tuple[list[WeightsCheck], list[str]]:
    """
    Re-hash every weights file: the built-in models' and, read afresh from the user
    registry, the user models'. Returns (checks, registry problems). A built-in model
    whose file is absent is "not installed" (fetch or train it), not a failure.
    """
    directory = Path(directory or weights_dir())
    checks = []
    builtin = [s for s in MODELS.values() if s.origin != "user"]
    for spec in builtin:
        status = weights_status(spec, directory)
        if status in ("missing", "not registered"):
            status = "not installed"
        checks.append(WeightsCheck(spec.key, spec.origin, directory / spec.weights, status))
    entries, problems = user_registry.load_entries(
        directory, taken={s.key for s in builtin}, archs=set(ARCHS)
    )
    for key, fields in entries.items():
        spec = ModelSpec(key=key, origin="user", **fields)
        status = weights_status(spec, directory)
        checks.append(WeightsCheck(key, "user", directory / spec.weights, status))
    return checks, problems
