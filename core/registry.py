"""Which detectors exist, where their weights are, and how to load them safely.

An architecture (``Arch``) is the unit of extension: it carries its builder, default
config, front end (core.frontends), label order, Grad-CAM layer and training recipe, so
nothing else in the engine needs to know it. To add one: a file under core/models/ with
the nn.Module and one ARCHS entry (or ``register_arch`` at run time); to add weights for
it, one MODELS entry (or ``register_model``). Tests parametrise over ARCHS and MODELS.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from .audio import SAMPLE_RATE
from .features import CQT_N_SAMPLES
from .frontends import CQTFrontEnd, FrontEnd, WaveformFrontEnd
from .models.aasist import (
    AASIST,
    AASIST_CONFIG,
    AASIST_L_CONFIG,
    AASISTConfig,
    sinc_band_edges,
)
from .models.tssdnet import TSSD1D_N_SAMPLES, CQTResTSSDNet, ResTSSDNet

PROJECT_ROOT = Path(__file__).resolve().parent.parent
WEIGHTS_ENV = "DEEPFAKE_WEIGHTS_DIR"

OFFICIAL_AASIST_URL = "https://github.com/clovaai/aasist/raw/a04c986/models/weights/{file}"


@dataclass(frozen=True)
class Recipe:
    """Training defaults of an architecture (`python -m core train` overrides each)."""

    lr: float
    batch_size: int
    weight_decay: float
    epochs: int
    lr_min_ratio: float = 0.01  # cosine decays to lr * this
    crop: int | None = None  # training crop in samples; None = the input length


@dataclass(frozen=True)
class Arch:
    build: Callable[[dict], nn.Module]  # config -> untrained network, logits (B, 2)
    front_end: FrontEnd  # input transform and its geometry; front_end.input_length
    spoof_index: int  # which of the two logits means spoof
    gradcam_layer: str  # dotted module path of the last convolutional block
    recipe: Recipe
    paper: str = ""
    default_config: dict = field(default_factory=dict)  # JSON-able, for build
    # Hz edges (n_rows, 2) of the rows of a 2-D Grad-CAM map on a waveform model, given
    # n_rows (AASIST: sinc bands); None when the rows are not frequency bands
    cam_bands: Callable[[int], np.ndarray] | None = None

    @property
    def input_length(self) -> int:
        """native input length in samples at 16 kHz"""
        return self.front_end.input_length


def _aasist(config: dict) -> nn.Module:
    return AASIST(AASISTConfig(**{k: _tuples(v) for k, v in config.items()}))


def _tuples(v):
    return tuple(_tuples(i) for i in v) if isinstance(v, (list, tuple)) else v


_AASIST_PAPER = (
    "Jung et al., AASIST: Audio Anti-Spoofing using Integrated "
    "Spectro-Temporal Graph Attention Networks, ICASSP 2022"
)

# recipes: Res-TSSDNet, Hua et al. 2021 (Adam 1e-3); AASIST, Jung et al. 2022 (Adam
# 1e-4, weight decay 1e-4); epochs are this project's (see weights/MODEL_CARD.md)
ARCHS: dict[str, Arch] = {
    "tssd1d": Arch(
        build=lambda config: ResTSSDNet(),
        front_end=WaveformFrontEnd(TSSD1D_N_SAMPLES),
        spoof_index=1,
        gradcam_layer="RSM4",
        recipe=Recipe(lr=1e-3, batch_size=16, weight_decay=0.0, epochs=20),
        paper="Hua, Teoh, Zhang, Towards End-to-End Synthetic Speech Detection, "
        "IEEE SPL 28, 2021 (Res-TSSDNet)",
    ),
    "tssd2d": Arch(
        build=lambda config: CQTResTSSDNet(),
        front_end=CQTFrontEnd(CQT_N_SAMPLES),
        spoof_index=1,
        gradcam_layer="RSM4",
        recipe=Recipe(lr=1e-3, batch_size=16, weight_decay=0.0, epochs=10),
        paper="Hua, Teoh, Zhang, IEEE SPL 28, 2021 (2D Res-TSSDNet on CQT log power)",
    ),
    "aasist": Arch(
        build=_aasist,
        front_end=WaveformFrontEnd(AASIST_CONFIG.nb_samp),
        spoof_index=0,  # published convention: index 1 = bona fide
        gradcam_layer="encoder.5",
        recipe=Recipe(lr=1e-4, batch_size=8, weight_decay=1e-4, epochs=5),
        paper=_AASIST_PAPER,
        default_config=asdict(AASIST_CONFIG),
        cam_bands=sinc_band_edges,
    ),
    "aasist-l": Arch(
        build=_aasist,
        front_end=WaveformFrontEnd(AASIST_L_CONFIG.nb_samp),
        spoof_index=0,
        gradcam_layer="encoder.5",
        recipe=Recipe(lr=1e-4, batch_size=8, weight_decay=1e-4, epochs=10),
        paper=_AASIST_PAPER,
        default_config=asdict(AASIST_L_CONFIG),
        cam_bands=sinc_band_edges,
    ),
}


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
            sha256="bda87e8a139335993940b22b7dd40bacbe4b0f4a099e584868cdeacfcfe2e48a",
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
            sha256="5bcf026ad9fa318899afa952377c68382c1a727250191edfac440ac9dfbacc47",
            provenance="trained by this project on minispoof train (see model card)",
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


class WeightsError(RuntimeError):
    """Weights missing or not the expected file; str() names the file and the fix."""


def weights_dir() -> Path:
    return Path(os.environ.get(WEIGHTS_ENV) or PROJECT_ROOT / "weights")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
    """Verify the file's SHA-256, then load it as a plain state dict (no pickle code)."""
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
    net.load_state_dict(state, strict=True)
    return net.eval().to(device or default_device())


def fetch_weights(bundle: str, *, source_dir: Path | None = None) -> list[Path]:
    """
    Install a published bundle's checkpoints into the weights directory, verifying
    each SHA-256. From ``source_dir`` when given (a local copy), else downloaded.
    """
    if bundle not in OFFICIAL_BUNDLES:
        raise WeightsError(f"unknown bundle {bundle!r}; known: {', '.join(OFFICIAL_BUNDLES)}")
    dest_dir = weights_dir()
    dest_dir.mkdir(parents=True, exist_ok=True)
    installed = []
    for key in OFFICIAL_BUNDLES[bundle]:
        spec = MODELS[key]
        dest = dest_dir / spec.weights
        tmp = dest.with_suffix(dest.suffix + ".part")
        if source_dir is not None:
            src = Path(source_dir) / spec.weights
            if not src.exists():
                raise WeightsError(f"{src} not found (expected {spec.weights} in {source_dir})")
            shutil.copyfile(src, tmp)
        else:
            import urllib.request

            url = OFFICIAL_AASIST_URL.format(file=spec.weights)
            try:
                urllib.request.urlretrieve(url, tmp)
            except OSError as e:
                raise WeightsError(
                    f"could not download {url}: {e}; copy the file by hand and use --from DIR"
                ) from e
        actual = file_sha256(tmp)
        if actual != spec.sha256:
            tmp.unlink()
            raise WeightsError(
                f"{spec.weights}: SHA-256 {actual[:12]}... does not match the published "
                f"{spec.sha256[:12]}...; nothing installed"
            )
        tmp.replace(dest)
        installed.append(dest)
    return installed
