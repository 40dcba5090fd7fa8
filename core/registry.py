"""Which detectors exist, where their weights are, and how to load them safely.

To add a model: one file under core/models/ with the nn.Module, one ARCHS entry if the
architecture is new, and one MODELS entry below. Tests parametrise over MODELS.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from .audio import SAMPLE_RATE
from .features import CQT_N_SAMPLES
from .models.aasist import AASIST, AASIST_CONFIG, AASIST_L_CONFIG, AASISTConfig
from .models.tssdnet import TSSD1D_N_SAMPLES, CQTResTSSDNet, ResTSSDNet

PROJECT_ROOT = Path(__file__).resolve().parent.parent
WEIGHTS_ENV = "DEEPFAKE_WEIGHTS_DIR"

OFFICIAL_AASIST_URL = "https://github.com/clovaai/aasist/raw/a04c986/models/weights/{file}"


@dataclass(frozen=True)
class Arch:
    build: Callable[[dict], nn.Module]
    frontend: str  # "waveform" | "cqt"
    n_samples: int  # native input length at 16 kHz
    spoof_index: int  # which of the two logits means spoof
    gradcam_layer: str  # dotted module path of the last convolutional block
    paper: str


def _aasist(config: dict) -> nn.Module:
    return AASIST(AASISTConfig(**{k: _tuples(v) for k, v in config.items()}))


def _tuples(v):
    return tuple(_tuples(i) for i in v) if isinstance(v, (list, tuple)) else v


ARCHS: dict[str, Arch] = {
    "tssd1d": Arch(
        build=lambda config: ResTSSDNet(),
        frontend="waveform",
        n_samples=TSSD1D_N_SAMPLES,
        spoof_index=1,
        gradcam_layer="RSM4",
        paper="Hua, Teoh, Zhang, Towards End-to-End Synthetic Speech Detection, "
        "IEEE SPL 28, 2021 (Res-TSSDNet)",
    ),
    "tssd2d": Arch(
        build=lambda config: CQTResTSSDNet(),
        frontend="cqt",
        n_samples=CQT_N_SAMPLES,
        spoof_index=1,
        gradcam_layer="RSM4",
        paper="Hua, Teoh, Zhang, IEEE SPL 28, 2021 (2D Res-TSSDNet on CQT log power)",
    ),
    "aasist": Arch(
        build=_aasist,
        frontend="waveform",
        n_samples=AASIST_CONFIG.nb_samp,
        spoof_index=0,  # published convention: index 1 = bona fide
        gradcam_layer="encoder.5",
        paper="Jung et al., AASIST: Audio Anti-Spoofing using Integrated "
        "Spectro-Temporal Graph Attention Networks, ICASSP 2022",
    ),
}
ARCHS["aasist-l"] = ARCHS["aasist"]


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
    def frontend(self) -> str:
        return ARCHS[self.arch].frontend

    @property
    def n_samples(self) -> int:
        return ARCHS[self.arch].n_samples

    @property
    def window_hop(self) -> int:
        return self.hop or self.n_samples // 2

    @property
    def spoof_index(self) -> int:
        return ARCHS[self.arch].spoof_index

    @property
    def gradcam_layer(self) -> str:
        return ARCHS[self.arch].gradcam_layer

    def to_json(self) -> dict:
        d = asdict(self)
        d.update(
            frontend=self.frontend,
            n_samples=self.n_samples,
            window_seconds=self.n_samples / SAMPLE_RATE,
            hop_samples=self.window_hop,
            spoof_index=self.spoof_index,
            paper=ARCHS[self.arch].paper,
        )
        return d


_AASIST_CFG = {k: v for k, v in asdict(AASIST_CONFIG).items()}
_AASIST_L_CFG = {k: v for k, v in asdict(AASIST_L_CONFIG).items()}
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
