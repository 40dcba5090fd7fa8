"""How unfamiliar a file is to a model: how far its embedding lies from what the model trained on.

Each model's embedding of a window is the input of its classifier (Arch.embedding_layer);
a file's embedding is the mean over its scored windows (Verdict.embedding). On the
training files' embeddings we fit one Gaussian per model, its covariance shrunk by
Ledoit-Wolf, and measure a file by its Mahalanobis distance per dimension:

    distance(x) = sqrt((x - mean)' inv(cov) (x - mean) / d)      (about 1 on training files)

The calibration (core.training.calibrate) divides each model's distance by its 95th
percentile on in-domain dev files ("scale") and takes the largest ratio over the fused
models as the file's unfamiliarity; the threshold is the 95th percentile of that on
in-domain dev, so at most 5 % of in-domain dev files are flagged.

The fitted Gaussians live in ``familiarity.npz`` next to the calibration file, whose
SHA-256 the calibration records and checks before loading (arrays only, no pickle).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

FAMILIARITY_NAME = "familiarity.npz"
MIN_TRAIN_FILES = 20  # fewer training embeddings than this: no Gaussian is fitted


class FamiliarityError(ValueError):
    """A familiarity file that must not be used (missing, altered, malformed)."""


@dataclass(frozen=True)
class Gaussian:
    mean: np.ndarray  # (d,)
    whiten: np.ndarray  # (d, d): ||(x - mean) @ whiten||^2 is the squared Mahalanobis distance
    n_train: int = 0

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def distance(self, x) -> np.ndarray:
        """Mahalanobis distance per dimension; x (d,) -> float, (n, d) -> (n,)"""
        x = np.asarray(x, dtype=np.float64)
        z = (x - self.mean) @ self.whiten
        out = np.sqrt(np.sum(z * z, axis=-1) / self.dim)
        return float(out) if out.ndim == 0 else out


def fit_gaussian(embeddings) -> Gaussian:
    """Ledoit-Wolf Gaussian of (n, d) embeddings; raises ValueError on too few rows"""
    from sklearn.covariance import LedoitWolf

    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or len(x) < MIN_TRAIN_FILES:
        raise ValueError(f"need at least {MIN_TRAIN_FILES} training embeddings, got {len(x)}")
    lw = LedoitWolf().fit(x)
    # precision = L L' (Cholesky): (x - m)' P (x - m) = ||(x - m) @ L||^2
    whiten = np.linalg.cholesky(lw.precision_)
    return Gaussian(lw.location_.astype(np.float64), whiten, n_train=len(x))


@dataclass(frozen=True)
class Familiarity:
    """per model key: (weights SHA-256 the embeddings came from, its Gaussian)"""

    models: dict[str, tuple[str, Gaussian]]

    def distances(
        self, embeddings: Mapping[str, object], weights: Mapping[str, str]
    ) -> dict[str, float]:
        """model -> distance, for models with an embedding and the weights fitted for"""
        out = {}
        for key, emb in embeddings.items():
            fitted = self.models.get(key)
            if emb is None or fitted is None or weights.get(key) != fitted[0]:
                continue
            g = fitted[1]
            if len(emb) == g.dim:
                out[key] = float(g.distance(np.asarray(emb, dtype=np.float64)))
        return out

    def to_bytes(self) -> bytes:
        arrays = {}
        for key, (sha, g) in sorted(self.models.items()):
            arrays[f"{key}/weights_sha256"] = np.array(sha)
            arrays[f"{key}/mean"] = g.mean
            arrays[f"{key}/whiten"] = g.whiten
            arrays[f"{key}/n_train"] = np.array(g.n_train)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        return buf.getvalue()

    def save(self, path: str | Path) -> str:
        """write the npz; returns its SHA-256 (the calibration file records it)"""
        data = self.to_bytes()
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        return hashlib.sha256(data).hexdigest()

    @classmethod
    def load(cls, path: str | Path, sha256: str) -> "Familiarity":
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise FamiliarityError(f"{path.name}: cannot read it ({e.strerror or e})") from e
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise FamiliarityError(f"{path.name} does not match the SHA-256 its calibration "
                                   f"recorded ({actual[:12]}... vs {sha256[:12]}...): refit it")
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                keys = sorted({name.split("/", 1)[0] for name in z.files})
                models = {
                    k: (str(z[f"{k}/weights_sha256"]),
                        Gaussian(z[f"{k}/mean"].astype(np.float64),
                                 z[f"{k}/whiten"].astype(np.float64), int(z[f"{k}/n_train"])))
                    for k in keys
                }  # fmt: skip
        except (KeyError, ValueError, OSError) as e:
            raise FamiliarityError(f"{path.name} is not a familiarity file: {e}") from e
        return cls(models)


def unfamiliarity(distances: Mapping[str, float], scale: Mapping[str, float]) -> float | None:
    """the largest distance / scale over the models that have both; None when none has"""
    ratios = [d / scale[k] for k, d in distances.items() if scale.get(k, 0) > 0]
    return max(ratios) if ratios else None
