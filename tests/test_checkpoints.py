"""Checkpoint files as users have them (issue 12): training wrappers, DataParallel and
torch.compile prefixes, the reference implementations' layouts (Inc-TSSDNet's published
parameter names), rename rules for an architecture whose names differ, and a per-model
spoof logit. Helpers and the temp weights directory come from test_user_weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from test_user_weights import direct_logits, random_state, registry_logits, wdir  # noqa: F401

from core.detectors.checkpoints import CheckpointError, rename, strip_prefixes
from core.detectors.detect import Detector
from core.detectors.networks.inc_tssdnet import IncTSSDNet
from core.detectors.registry import MODELS, file_sha256, load_model
from core.detectors.user_weights import add_weights, remove_weights

WRAPPERS = {
    "bare": lambda s: s,
    "state_dict": lambda s: {"state_dict": s, "epoch": 4},
    "model": lambda s: {"model": s, "arch": "inc-tssdnet"},  # core.training.train's runs/*.last.pt
    "model_state_dict": lambda s: {"epoch": 61, "model_state_dict": s, "loss": torch.zeros(3)},
    "module.": lambda s: {f"module.{k}": v for k, v in s.items()},  # DataParallel
    "lightning+ddp+compile": lambda s: {
        "state_dict": {f"module._orig_mod.{k}": v for k, v in s.items()}
    },
}


@pytest.mark.parametrize("wrapper", WRAPPERS)
def test_wrapped_and_prefixed_checkpoints_load(wdir, tmp_path, wrapper):
    state = random_state(IncTSSDNet, seed=3)
    src = tmp_path / "ck.pth"
    torch.save(WRAPPERS[wrapper](state), src)
    key = "wrap-" + wrapper.replace("+", "-").rstrip(".").replace("_", "-")
    add_weights(key, arch="inc-tssdnet", file=src)
    x = torch.randn(2, 96_000, generator=torch.Generator().manual_seed(1))
    assert torch.equal(registry_logits(key, x), direct_logits(IncTSSDNet, state, x))
    assert file_sha256(wdir / MODELS[key].weights) == file_sha256(src)  # the file as given


def published_inc_tssdnet_layout() -> dict[str, tuple[int, ...]]:
    """
    parameter names and shapes of the reference Inc-TSSDNet ("DilatedNet" of the
    authors' models.py), written out from its layout: a 7-tap stem conv (16 channels),
    four DilatedCovModules (dilations 1, 2, 4, 8, each a quarter of the output
    channels: 16->32, 32->64, 64->128, 128->128), then 128->64->32->2.
    """
    out = {"conv1.weight": (16, 1, 7)}
    out.update({f"bn1.{p}": (16,) for p in ("weight", "bias", "running_mean", "running_var")})
    out["bn1.num_batches_tracked"] = ()
    for i, (c_in, c_out) in enumerate([(16, 32), (32, 64), (64, 128), (128, 128)], start=1):
        for d in (1, 2, 4, 8):
            out[f"DCM{i}.cv{d}.weight"] = (c_out // 4, c_in, 3)
            for p in ("weight", "bias", "running_mean", "running_var"):
                out[f"DCM{i}.bn{d}.{p}"] = (c_out // 4,)
            out[f"DCM{i}.bn{d}.num_batches_tracked"] = ()
    for name, (n_in, n_out) in {"fc1": (128, 64), "fc2": (64, 32), "out": (32, 2)}.items():
        out[f"{name}.weight"], out[f"{name}.bias"] = (n_out, n_in), (n_out,)
    return out


def test_inc_tssdnet_matches_the_published_layout(wdir, tmp_path):
    layout = published_inc_tssdnet_layout()
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    n_learnable = sum(int(np.prod(s)) for k, s in layout.items() if not k.endswith(buffers))
    # 112 stem + 32 bn + 1,600 + 6,272 + 24,832 + 49,408 stages + 10,402 head
    assert n_learnable == 92_658 == sum(p.numel() for p in IncTSSDNet().parameters())
    g = torch.Generator().manual_seed(0)
    state = {k: torch.randn(s, generator=g) if s else torch.tensor(7) for k, s in layout.items()}
    for k in state:
        if k.endswith("running_var"):
            state[k] = state[k].abs() + 0.5
    # saved the way the reference train.py saves every epoch
    src = tmp_path / "Inc_TSSDNet_time_frame_61_ASVspoof2019_LA.pth"
    torch.save({"epoch": 61, "model_state_dict": state, "optimizer_state_dict": {},
                "scheduler_state_dict": {}, "loss": torch.zeros(100)}, src)  # fmt: skip
    spec = add_weights("inc-published", arch="inc-tssdnet", file=src)
    assert spec.spoof_index == 1 and spec.gradcam_layer == "DCM4" and spec.input_length == 96_000
    net = load_model("inc-published", device="cpu")
    shapes = []
    net.DCM4.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)) and None)
    with torch.no_grad():
        assert net(torch.zeros(3, 96_000)).shape == (3, 2)
    assert shapes == [(3, 128, 375)]  # the reference's final max-pool spans 375 frames


class ToyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv1d(1, 4, 9, stride=8)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(torch.relu(self.stem(x.unsqueeze(1))).mean(-1))


def test_published_names_are_renamed_before_the_strict_load(wdir, tmp_path):
    """An architecture whose published names differ from ours: its rename rules apply
    when the file is added and at every load; the strict load sees our names only."""
    from core.detectors.frontends import WaveformFrontEnd
    from core.detectors.registry import Arch, Recipe, register_arch, unregister_arch

    arch = Arch(
        build=lambda config: ToyNet(), front_end=WaveformFrontEnd(1600), spoof_index=1,
        gradcam_layer="stem", recipe=Recipe(lr=1e-3, batch_size=2, weight_decay=0, epochs=1),
        key_renames=((r"^features\.0\.", "stem."), (r"^classifier\.", "head.")),
    )  # fmt: skip
    register_arch("toy-renamed", arch)
    try:
        ours = ToyNet().state_dict()
        theirs = {k.replace("stem.", "features.0.").replace("head.", "classifier."): v
                  for k, v in ours.items()}  # fmt: skip
        torch.save({"module." + k: v for k, v in theirs.items()}, tmp_path / "theirs.pt")
        add_weights("toy-renamed-model", arch="toy-renamed", file=tmp_path / "theirs.pt")
        x = torch.randn(2, 1600)
        assert torch.equal(registry_logits("toy-renamed-model", x), direct_logits(ToyNet, ours, x))
    finally:
        MODELS.pop("toy-renamed-model", None)
        unregister_arch("toy-renamed")


def test_prefixes_and_rename_collisions():
    t = torch.zeros(1)
    assert set(strip_prefixes({"module.a": t, "module.b": t})) == {"a", "b"}
    assert set(strip_prefixes({"module.a": t, "b": t})) == {"module.a", "b"}  # not all: kept
    with pytest.raises(CheckpointError, match="two parameters map to the name 'x'"):
        rename({"a": t, "b": t}, [(r"^[ab]$", "x")])


def test_spoof_index_override_flips_p_spoof(wdir, tmp_path):
    torch.save(random_state(IncTSSDNet, seed=5), tmp_path / "inc.pt")
    a = add_weights("inc-as-published", arch="inc-tssdnet", file=tmp_path / "inc.pt")
    b = add_weights("inc-swapped", arch="inc-tssdnet", file=tmp_path / "inc.pt", spoof_index=0)
    assert (a.spoof_index, b.spoof_index) == (1, 0) and a.weights == b.weights  # one copy
    x = np.random.default_rng(0).standard_normal((2, 96_000)).astype(np.float32) * 0.1
    pa = Detector(a, load_model(a, device="cpu")).p_spoof(x)
    pb = Detector(b, load_model(b, device="cpu")).p_spoof(x)
    np.testing.assert_allclose(pa, 1 - pb, atol=1e-12)
    remove_weights("inc-swapped")  # the shared copy stays: inc-as-published uses it
    assert (wdir / a.weights).exists() and "inc-as-published" in MODELS


