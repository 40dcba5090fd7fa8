"""Which detectors exist, where their weights are, and how to load them safely.

An architecture (``Arch``, core.detectors.archs) is the unit of extension: it carries its builder,
default config, front end (core.detectors.frontends), label order, Grad-CAM layer and training
recipe, so nothing else in the engine needs to know it. To add one: a file under
core/detectors/networks/ with the nn.Module and one ARCHS entry (or ``register_arch`` at run time);
to add weights for it, one MODELS entry (or ``register_model``). Tests parametrise over
ARCHS and MODELS.

MODELS holds the built-in models (defined here, ``origin="built-in"``) and, merged at
import by ``load_user_models``, the user's (``python -m core weights add``, kept in the
user registry file next to the weights: core.detectors.user_registry, ``origin="user"``). A user
model is an ordinary MODELS entry: the engine, the CLI, batch and explanations use it as
any other. Reading checkpoint files lives in core.detectors.checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from core.audio.decode import SAMPLE_RATE
from core.detectors import user_registry
from core.detectors.archs import ARCHS, Arch, Recipe  # noqa: F401 (Recipe: imported from here)
from core.detectors.checkpoints import (  # noqa: F401
    CheckpointError,
    WeightsError,
    file_sha256,
    fit,
    install_verified,
    normalise,
)
from core.detectors.frontends import FrontEnd

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # this file: core/detectors/registry.py
WEIGHTS_ENV = "DEEPFAKE_WEIGHTS_DIR"

OFFICIAL_AASIST_URL = "https://github.com/clovaai/aasist/raw/a04c986/models/weights/{file}"


@dataclass(frozen=True)
class ModelSpec:
    key: str
    display_name: str
    arch: str  # key of ARCHS
    config: dict  # architecture config, JSON-able
    weights: str  # file name under the weights directory
    sha256: str  # of the weights file; loading refuses any other content
    provenance: str
    how_to_get: str  # one line: the command that installs the weights
    hop: int = 0  # window hop in samples; 0 = half the native window
    card: str = ""  # model card file under the weights directory, if any
    origin: str = "built-in"  # "built-in" (defined here) | "user" (the user registry)
    spoof_logit: int | None = None  # which logit means spoof, when not the arch's
    source: str = ""  # user models: the file the weights were added from
    added: str = ""  # user models: when, ISO 8601 UTC

    @property
    def architecture(self) -> Arch:
        return ARCHS[self.arch]

    @property
    def front_end(self) -> FrontEnd:
        return self.architecture.front_end

    @property
    def input_length(self) -> int:
        """samples at 16 kHz in one network window"""
        return self.architecture.input_length

    @property
    def window_hop(self) -> int:
        return self.hop or self.input_length // 2

    @property
    def spoof_index(self) -> int:
        if self.spoof_logit is not None:
            return self.spoof_logit
        return self.architecture.spoof_index

    @property
    def gradcam_layer(self) -> str:
        return self.architecture.gradcam_layer

    @property
    def cam_bands(self) -> Callable[[int], np.ndarray] | None:
        return self.architecture.cam_bands

    def to_json(self) -> dict:
        d = asdict(self)
        d.update(
            frontend=str(self.front_end),
            n_samples=self.input_length,  # JSON name kept for readers of this dict
            window_seconds=self.input_length / SAMPLE_RATE,
            hop_samples=self.window_hop,
            spoof_index=self.spoof_index,
            paper=self.architecture.paper,
            reference=self.architecture.reference,
        )
        return d


_AASIST_CFG = ARCHS["aasist"].default_config
_AASIST_L_CFG = ARCHS["aasist-l"].default_config
_TRAIN_HINT = "train it: see weights/MODEL_CARD.md for the exact command"
_FETCH_HINT = "python -m core weights fetch aasist-official [--from DIR]"

MODELS: dict[str, ModelSpec] = {
    spec.key: spec
    for spec in [
        ModelSpec(
            key="tssd1d",
            display_name="Res-TSSDNet 1D (waveform)",
            arch="tssd1d",
            config={},
            weights="tssd1d.pt",
            sha256="07694462fa860310cfed3f12414310317589102b1f94316e66ad4caf1c28a850",
            provenance="trained by this project on minispoof train (see model card)",
            how_to_get=_TRAIN_HINT,
            card="MODEL_CARD.md",
        ),
        ModelSpec(
            key="tssd2d",
            display_name="2D Res-TSSDNet (CQT)",
            arch="tssd2d",
            config={},
            weights="tssd2d.pt",
            sha256="136ba540f1b3676d1a18ed578e464df0e513806277aede771353778d527a7e11",
            provenance="trained by this project on minispoof train + demospoof train and "
            "training-only vocoded copies (see model card)",
            how_to_get=_TRAIN_HINT,
            card="MODEL_CARD.md",
        ),
        ModelSpec(
            key="aasist",
            display_name="AASIST (fine-tuned)",
            arch="aasist",
            config=_AASIST_CFG,
            weights="aasist.pt",
            sha256="4047fff15c28a89c43d7ec8d8685afc4da5f299c337b1bab8f98ac7e9fde2e72",
            provenance="published AASIST weights (clovaai/aasist, MIT) fine-tuned by "
            "this project on minispoof train (see model card)",
            how_to_get=_TRAIN_HINT,
            card="MODEL_CARD.md",
        ),
        ModelSpec(
            key="aasist-official",
            display_name="AASIST (published, ASVspoof 2019 LA)",
            arch="aasist",
            config=_AASIST_CFG,
            weights="AASIST.pth",
            sha256="51d2d9cf0738172f61e2a384ec50a54a55363240f67c971ed55a92435bc1a1c0",
            provenance="clovaai/aasist @a04c986 models/weights/AASIST.pth (MIT, "
            "NAVER Corp.); trained on ASVspoof 2019 LA train; EER 0.83 % on LA eval",
            how_to_get=_FETCH_HINT,
        ),
        ModelSpec(
            key="aasist-l-official",
            display_name="AASIST-L (published, ASVspoof 2019 LA)",
            arch="aasist-l",
            config=_AASIST_L_CFG,
            weights="AASIST-L.pth",
            sha256="814331d088032bb4c3fa61cc014789eadeed464209dd094ab3a2dd6ffbdce27a",
            provenance="clovaai/aasist @a04c986 models/weights/AASIST-L.pth (MIT, "
            "NAVER Corp.); trained on ASVspoof 2019 LA train; EER 0.99 % on LA eval",
            how_to_get=_FETCH_HINT,
        ),
    ]
}

OFFICIAL_BUNDLES = {"aasist-official": ["aasist-official", "aasist-l-official"]}


def register_arch(key: str, arch: Arch, *, replace: bool = False) -> Arch:
    """Add an architecture at run time (plug-ins, tests); refuses to shadow a key."""
    if not isinstance(arch, Arch):
        raise TypeError(f"register_arch needs an Arch, not {type(arch).__name__}")
    if key in ARCHS and not replace:
        raise ValueError(f"architecture {key!r} is already registered")
    ARCHS[key] = arch
    return arch


def unregister_arch(key: str) -> None:
    """Remove an architecture; refused while a registered model still uses it."""
    users = [k for k, s in MODELS.items() if s.arch == key]
    if users:
        raise ValueError(f"architecture {key!r} is used by models {', '.join(users)}")
    ARCHS.pop(key)


def register_model(spec: ModelSpec, *, replace: bool = False) -> ModelSpec:
    """Add a model (weights of a registered architecture) at run time."""
    if spec.arch not in ARCHS:
        raise ValueError(f"model {spec.key!r}: unknown architecture {spec.arch!r}")
    if spec.key in MODELS and not replace:
        raise ValueError(f"model {spec.key!r} is already registered")
    MODELS[spec.key] = spec
    return spec


def unregister_model(key: str) -> None:
    MODELS.pop(key)


def weights_dir() -> Path:
    return Path(os.environ.get(WEIGHTS_ENV) or PROJECT_ROOT / "weights")


def weights_status(spec: ModelSpec, directory: Path | None = None) -> str:
    """'ok' | 'missing' | 'not registered' (no SHA-256 in MODELS) | 'checksum mismatch'"""
    path = (directory or weights_dir()) / spec.weights
    if not path.exists():
        return "missing"
    if not spec.sha256:
        return "not registered"
    return "ok" if file_sha256(path) == spec.sha256 else "checksum mismatch"


def available_models(directory: Path | None = None) -> list[str]:
    return [k for k, s in MODELS.items() if weights_status(s, directory) == "ok"]


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build_model(spec: ModelSpec) -> nn.Module:
    return ARCHS[spec.arch].build(spec.config)


def load_state_dict(path: Path, sha256: str) -> dict:
    """Verify the file's SHA-256, then torch.load it with weights_only (no pickle code)."""
    if not path.exists():
        raise WeightsError(f"weights file {path} is missing")
    actual = file_sha256(path)
    if actual != sha256:
        raise WeightsError(
            f"weights file {path} has SHA-256 {actual[:12]}..., expected "
            f"{sha256[:12]}...: refusing to load a corrupt or unknown file"
        )
    return torch.load(path, map_location="cpu", weights_only=True)


def load_model(
    key: str | ModelSpec,
    *,
    directory: Path | None = None,
    device: torch.device | str | None = None,
) -> nn.Module:
    """Build the network, load checksum-verified weights strictly, eval mode."""
    spec = MODELS[key] if isinstance(key, str) else key
    path = (directory or weights_dir()) / spec.weights
    if not spec.sha256:
        raise WeightsError(
            f"model {spec.key}: no registered weights ({path.name}); {spec.how_to_get}"
        )
    try:
        state = load_state_dict(path, spec.sha256)
    except WeightsError as e:
        raise WeightsError(f"model {spec.key}: {e}; to get it: {spec.how_to_get}") from e
    net = build_model(spec)
    try:
        state = normalise(state, renames=spec.architecture.key_renames, source=path)
        state = fit(net, state, arch=spec.arch, source=path)
    except CheckpointError as e:
        raise WeightsError(f"model {spec.key}: {e}") from e
    net.load_state_dict(state, strict=True)
    return net.eval().to(device or default_device())


def fetch_weights(bundle: str, *, source_dir: Path | None = None) -> list[Path]:
    """
    Install a published bundle's checkpoints into the weights directory, verifying
    each SHA-256. From ``source_dir`` when given (a local copy), else downloaded.
    """
    if bundle not in OFFICIAL_BUNDLES:
        raise WeightsError(f"unknown bundle {bundle!r}; known: {', '.join(OFFICIAL_BUNDLES)}")
    files = [(MODELS[k].weights, MODELS[k].sha256) for k in OFFICIAL_BUNDLES[bundle]]
    return install_verified(
        files, weights_dir(), source_dir=source_dir, url_template=OFFICIAL_AASIST_URL
    )


_USER_PROBLEMS: list[str] = []


def load_user_models(directory: Path | None = None) -> list[str]:
    """
    Merge the user registry of the weights directory into MODELS, replacing the user
    models merged before; returns the problems, one line each (kept for
    ``user_registry_problems``). An unreadable file loads no user model, a bad entry
    only skips itself; built-in models are never affected and no file is changed.
    """
    for key in [k for k, s in MODELS.items() if s.origin == "user"]:
        del MODELS[key]
    entries, problems = user_registry.load_entries(
        directory or weights_dir(), taken=set(MODELS), archs=set(ARCHS)
    )
    for key, fields in entries.items():
        MODELS[key] = ModelSpec(key=key, origin="user", **fields)
    _USER_PROBLEMS[:] = problems
    return problems


def user_registry_problems() -> list[str]:
    """what the last load_user_models could not load, one line each (the Models page)"""
    return list(_USER_PROBLEMS)


load_user_models()
