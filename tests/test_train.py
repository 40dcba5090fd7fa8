"""Protocol parsing, one-epoch training, checkpoint round trip and the sidecar."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.audio.protocol import (
    ProtocolError,
    check_audio,
    count_labels,
    crop_or_tile,
    parse_protocol,
)

ROOT = Path(__file__).resolve().parent.parent


def test_parse_protocol_2019_la(tmp_path):
    p = tmp_path / "p.txt"
    p.write_text("LA_0079 LA_T_1138215 - - bonafide\n\nLA_0079 LA_T_1271820 - A01 spoof\n")
    entries = parse_protocol(p)
    assert [(e.file_id, e.system, e.key, e.line) for e in entries] == [
        ("LA_T_1138215", "-", "bonafide", 1),
        ("LA_T_1271820", "A01", "spoof", 3),
    ]
    assert [e.is_spoof for e in entries] == [False, True]
    assert count_labels(entries) == {"bonafide": 1, "spoof": 1, "systems": {"A01": 1}}


def test_parse_protocol_2021_la_keys(tmp_path):
    p = tmp_path / "p.txt"
    p.write_text("LA_0009 LA_E_9332881 alaw ita_tx A07 spoof notrim eval\n"
                 "LA_0030 LA_E_5932896 alaw ita_tx bonafide bonafide notrim eval\n")  # fmt: skip
    entries = parse_protocol(p)
    assert [(e.system, e.key) for e in entries] == [("A07", "spoof"), ("-", "bonafide")]


def test_malformed_line_names_its_line_number(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_text("S1 F1 - - bonafide\nS1 F2 - A01 spoof\nS1 F3 - A01 fake\n")
    with pytest.raises(ProtocolError, match=r"bad\.txt:3: .*'S1 F3 - A01 fake'"):
        parse_protocol(p)


def test_spoof_without_system_and_duplicates_are_errors(tmp_path):
    p = tmp_path / "p.txt"
    p.write_text("S1 F1 - - spoof\n")
    with pytest.raises(ProtocolError, match=":1: spoof line without"):
        parse_protocol(p)
    p.write_text("S1 F1 - - bonafide\nS1 F1 - A01 spoof\n")
    with pytest.raises(ProtocolError, match=":2: FILE_ID F1 already listed on line 1"):
        parse_protocol(p)


def test_missing_audio_file_is_named(tmp_path):
    p = tmp_path / "p.txt"
    p.write_text("S1 F1 - - bonafide\nS1 F2 - A01 spoof\n")
    (tmp_path / "F1.flac").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"F2\.flac"):
        check_audio(parse_protocol(p), tmp_path)


def test_crop_or_tile_lengths_and_tiling():
    x = np.arange(5, dtype=np.float32)
    assert crop_or_tile(x, 12, None).tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]
    rng = np.random.default_rng(0)
    y = crop_or_tile(x, 3, rng)
    assert len(y) == 3 and y[1] == y[0] + 1
    spec = np.arange(20, dtype=np.float32).reshape(2, 10)
    assert crop_or_tile(spec, 25, rng).shape == (2, 25)


def _subset(minispoof_dir, tmp_path, n_per_class, split="train", name="p.txt"):
    lines = (minispoof_dir / "protocols" / f"minispoof.{split}.txt").read_text().splitlines()
    bona = [l for l in lines if l.endswith("bonafide")][:n_per_class]
    spoof = [l for l in lines if l.endswith("spoof")][:n_per_class]
    p = tmp_path / name
    p.write_text("\n".join(bona + spoof) + "\n")
    return p


@pytest.mark.parametrize("augmented", [False, True], ids=["plain", "augmented"])
def test_one_epoch_lowers_training_loss(minispoof_dir, tmp_path, augmented):
    from core.training.augment import AugmentConfig, Augmenter
    from core.training.train import build_net, class_weights, load_train_data, run_epoch

    torch.manual_seed(0)
    entries = parse_protocol(_subset(minispoof_dir, tmp_path, 6))
    data = load_train_data("tssd1d", [(entries, minispoof_dir / "flac")])
    net = build_net("tssd1d")
    weights = class_weights(data)
    x, y = data.batch(np.arange(len(data.items)), None)

    def loss() -> float:
        net.train()  # batch statistics: the running ones barely move in a few steps
        with torch.no_grad():
            return F.cross_entropy(net(x), y, weight=weights).item()

    before = loss()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    # augmented: every crop goes through every augmentation (probability 1)
    aug = Augmenter(AugmentConfig(*([1.0] * 6)), seed=0) if augmented else None
    run_epoch(net, data, opt, None, batch_size=4, rng=np.random.default_rng(0),
              weights=weights, device=torch.device("cpu"), augment=aug)  # fmt: skip
    assert loss() < before


def test_train_writes_best_state_dict_and_sidecar(minispoof_dir, tmp_path, capsys):
    from core.cli import main
    from core.detectors.registry import file_sha256, load_model
    from core.training.evaluate import spec_from_sidecar
    from core.training.train import build_net, checkpoint_path, epoch_path

    train_p = _subset(minispoof_dir, tmp_path, 3, "train", "train.txt")
    dev_p = _subset(minispoof_dir, tmp_path, 2, "dev", "dev.txt")
    out = tmp_path / "w" / "tiny.pt"
    rc = main(["train", "--arch", "tssd1d", "--protocol", str(train_p),
               "--audio-dir", str(minispoof_dir / "flac"), "--dev-protocol", str(dev_p),
               "--out", str(out), "--epochs", "1", "--batch-size", "3",
               "--no-progress"])  # fmt: skip
    assert rc == 0
    side = json.loads(out.with_suffix(".json").read_text())
    # the sidecar's SHA-256 is the file's
    assert side["sha256"] == file_sha256(out)
    assert side["arch"] == "tssd1d" and side["epochs_done"] == 1 and side["best_epoch"] == 1
    counts = side["data"]["train_counts"]
    assert (counts["bonafide"], counts["spoof"]) == (3, 3)
    assert side["command"].startswith("python -m core train --arch tssd1d")
    assert 0.0 <= side["dev_eer"] <= 1.0
    # a plain state dict, loadable without pickle code
    state = torch.load(out, map_location="cpu", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())

    # save -> load round trip: the registry-loaded net gives the trained net's logits
    trained = build_net("tssd1d")
    ck = torch.load(checkpoint_path(out), map_location="cpu", weights_only=True)
    trained.load_state_dict(ck["model"])
    loaded = load_model(spec_from_sidecar(out), directory=out.parent, device="cpu")
    x = torch.randn(2, 96_000, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(trained.eval()(x), loaded(x))
    # each epoch's weights are kept for curves; the only epoch is the best one
    per_epoch = torch.load(epoch_path(out, 1), map_location="cpu", weights_only=True)
    assert all(torch.equal(per_epoch[k], state[k]) for k in state)
    # scripts/epoch_curves.py scores them: one row per epoch with the dev EER the run
    # logged and the EERs of the given (here: the dev) protocol
    import importlib.util

    spec = importlib.util.spec_from_file_location("epoch_curves", ROOT / "scripts" / "epoch_curves.py")
    curves = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(curves)
    (row,) = curves.curves(out, dev_p, minispoof_dir / "flac")
    assert row["epoch"] == 1 and row["best"] and row["dev_eer"] == 100 * side["dev_eer"]
    assert 0.0 <= row["eval_eer"] <= 100.0 and row["eval_known"] is not None


def test_resume_continues_from_the_checkpoint(minispoof_dir, tmp_path):
    from core.training.train import TrainConfig, train

    train_p = _subset(minispoof_dir, tmp_path, 2, "train", "train.txt")
    dev_p = _subset(minispoof_dir, tmp_path, 2, "dev", "dev.txt")
    cfg = dict(arch="tssd1d", protocol=str(train_p), audio_dir=str(minispoof_dir / "flac"),
               dev_protocol=str(dev_p), out=str(tmp_path / "r.pt"), lr=1e-3,
               batch_size=4, weight_decay=0.0)  # fmt: skip
    train(TrainConfig(epochs=1, **cfg), progress=False, log=lambda *a: None)
    side = train(TrainConfig(epochs=2, resume=True, **cfg), progress=False, log=lambda *a: None)
    assert [h["epoch"] for h in side["history"]] == [1, 2]


def test_augmented_crops_are_seeded_and_feature_models_get_them_raw(minispoof_dir, tmp_path):
    """--augment: each crop is augmented from (seed, epoch, file); a CQT model then reads
    waveforms and computes its features per crop, matching its cached-feature input."""
    from core.training.augment import AugmentConfig, Augmenter
    from core.training.train import load_train_data

    entries = parse_protocol(_subset(minispoof_dir, tmp_path, 2))
    groups = [(entries, minispoof_dir / "flac")]
    wave = load_train_data("tssd1d", groups, raw=True)
    aug = Augmenter(AugmentConfig(convolutive=1.0, stationary_noise=1.0, codec=0.0), seed=3)
    idx = np.arange(len(entries))

    def draw(epoch):
        return wave.batch(idx, np.random.default_rng(0), augment=aug, epoch=epoch)[0]

    plain = wave.batch(idx, np.random.default_rng(0))[0]
    assert torch.equal(draw(1), draw(1)) and not torch.equal(draw(1), draw(2))
    assert not torch.allclose(draw(1), plain) and draw(1).shape == plain.shape

    cached = load_train_data("tssd2d", groups)
    raw = load_train_data("tssd2d", groups, raw=True)
    a, b = cached.batch(idx, None)[0], raw.batch(idx, None)[0]
    assert a.shape == b.shape == (len(entries), 1, 432, 401)
    # same first window, CQT of the whole file vs of the crop: equal away from the edges
    mid = slice(20, 380)
    r = np.corrcoef(a[..., mid].flatten().numpy(), b[..., mid].flatten().numpy())[0, 1]
    assert r > 0.99
    augmented = raw.batch(idx, np.random.default_rng(0), augment=aug, epoch=0)[0]
    assert augmented.shape == a.shape and torch.isfinite(augmented).all()
    with pytest.raises(ValueError, match="waveform items"):
        cached.batch(idx, np.random.default_rng(0), augment=aug)


def test_extra_training_data_is_counted_and_recorded(minispoof_dir, tmp_path):
    from core.cli import main

    train_p = _subset(minispoof_dir, tmp_path, 2, "train", "train.txt")
    dev_p = _subset(minispoof_dir, tmp_path, 2, "dev", "dev.txt")
    extra_dir = tmp_path / "extra"
    (extra_dir / "flac").mkdir(parents=True)
    bona = [e for e in parse_protocol(train_p) if e.key == "bonafide"]
    lines = []
    for e in bona:  # stand-in copy-synthesis files: the bona fide audio under new ids
        (extra_dir / "flac" / f"VC_X_{e.file_id}.flac").symlink_to(
            minispoof_dir / "flac" / f"{e.file_id}.flac"
        )
        lines.append(f"{e.speaker} VC_X_{e.file_id} - VX spoof")
    (extra_dir / "extra.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "w" / "aug.pt"
    rc = main(["train", "--arch", "tssd1d", "--protocol", str(train_p),
               "--audio-dir", str(minispoof_dir / "flac"), "--dev-protocol", str(dev_p),
               "--extra", str(extra_dir / "extra.txt"), str(extra_dir / "flac"),
               "--augment", "--out", str(out), "--epochs", "1", "--batch-size", "3",
               "--no-progress"])  # fmt: skip
    assert rc == 0
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["data"]["train_counts"]["spoof"] == 2 + len(bona)
    assert side["data"]["train_counts"]["systems"]["VX"] == len(bona)
    assert side["data"]["extra_train"] == [
        {"protocol": str(extra_dir / "extra.txt"), "audio_dir": str(extra_dir / "flac")}
    ]
    assert side["recipe"]["augment"].startswith("core.training.augment.Augmenter")
    assert "--extra" in side["command"] and "--augment" in side["command"]


def test_init_reads_wrapped_checkpoints_and_refuses_foreign_files(minispoof_dir, tmp_path, capsys):
    from core.cli import main
    from core.detectors.registry import file_sha256
    from core.training.train import build_net

    train_p = _subset(minispoof_dir, tmp_path, 2, "train", "train.txt")
    dev_p = _subset(minispoof_dir, tmp_path, 2, "dev", "dev.txt")
    torch.manual_seed(1)
    start = build_net("tssd1d").state_dict()
    wrapped = tmp_path / "wrapped.pth"  # a DataParallel training checkpoint
    torch.save({"epoch": 3, "model_state_dict": {f"module.{k}": v for k, v in start.items()}},
               wrapped)  # fmt: skip
    base = ["train", "--arch", "tssd1d", "--protocol", str(train_p), "--audio-dir",
            str(minispoof_dir / "flac"), "--dev-protocol", str(dev_p), "--epochs", "1",
            "--batch-size", "4", "--lr", "1e-9", "--no-progress"]  # fmt: skip
    out = tmp_path / "w" / "ft.pt"
    assert main([*base, "--out", str(out), "--init", str(wrapped)]) == 0
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["init"]["sha256"] == file_sha256(wrapped)
    tuned = torch.load(out, map_location="cpu", weights_only=True)
    # lr 1e-9: the weights are the initial ones, so the wrapper was read, not ignored
    k = next(k for k in start if k.endswith("weight"))
    assert torch.allclose(tuned[k], start[k], atol=1e-6)
    capsys.readouterr()

    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    assert main([*base, "--out", str(tmp_path / "w" / "bad.pt"), "--init", str(junk)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "junk.pth: not a" in err and err.count("\n") == 1


def test_dev_degrade_selects_by_mean_of_clean_and_degraded_dev(minispoof_dir, tmp_path, capsys):
    """--dev-degrade: dev scored under each condition, the epoch picked by the mean EER"""
    from core.cli import main
    from core.training.augment import parse_degradation
    from core.training.dev_selection import load_degraded_dev, selection_score
    from core.training.robustness import condition_seed

    dev_p = _subset(minispoof_dir, tmp_path, 2, "dev", "dev.txt")
    entries = parse_protocol(dev_p)
    sets = load_degraded_dev("tssd1d", entries, minispoof_dir / "flac", ("noise:10db", "gain:-6db"))
    assert list(sets) == ["noise:10db", "gain:-6db"]
    clean = [x for x in load_degraded_dev("tssd1d", entries, minispoof_dir / "flac", ("gain:0db",))["gain:0db"].items]
    # each file degraded once with evaluate --degrade's seed for it
    f = parse_degradation("noise:10db")
    want = f(clean[1], np.random.default_rng(condition_seed(entries[1].file_id, "noise:10db")))
    np.testing.assert_array_equal(sets["noise:10db"].items[1], want)
    np.testing.assert_allclose(sets["gain:-6db"].items[0], clean[0] * 10 ** (-6 / 20), rtol=1e-5)
    assert selection_score(0.1, {"a": 0.3, "b": 0.5}) == pytest.approx(0.3)
    assert selection_score(0.1, {}) == pytest.approx(0.1)
    # the CQT model gets the degraded waveforms raw and transforms each crop
    cqt = load_degraded_dev("tssd2d", entries[:2], minispoof_dir / "flac", ("noise:10db",))
    x, _ = cqt["noise:10db"].batch(np.arange(2), None)
    assert tuple(x.shape[-2:]) == (432, 401)

    train_p = _subset(minispoof_dir, tmp_path, 2, "train", "train.txt")
    out = tmp_path / "d.pt"
    rc = main(["train", "--arch", "tssd1d", "--protocol", str(train_p),
               "--audio-dir", str(minispoof_dir / "flac"), "--dev-protocol", str(dev_p),
               "--out", str(out), "--epochs", "1", "--batch-size", "4", "--no-progress",
               "--dev-degrade", "clean,noise:10db"])  # fmt: skip
    assert rc == 0
    side = json.loads(out.with_suffix(".json").read_text())
    (h,) = side["history"]
    assert side["dev_degrade"] == ["noise:10db"] and set(h["dev_eer_degraded"]) == {"noise:10db"}
    assert h["dev_select"] == pytest.approx((h["dev_eer"] + h["dev_eer_degraded"]["noise:10db"]) / 2, abs=1e-6)
    assert "noise:10db" in side["recipe"]["selection"] and "--dev-degrade noise:10db" in side["command"]
    assert "mean clean + degraded dev EER" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["train", "--arch", "tssd1d", "--protocol", str(train_p), "--audio-dir", "x",
              "--dev-protocol", str(dev_p), "--out", str(out), "--dev-degrade", "vinyl"])


def test_matched_dev_joins_the_epoch_choice_and_sources_are_recorded(minispoof_dir, tmp_path, capsys):
    """--matched-dev: a dev set scored per source (first column); the selection score is the
    mean of the usual dev score and its matched EER; the sidecar lists every training
    protocol's first-column values and systems (what the leakage test reads)"""
    from core.cli import main

    train_p = _subset(minispoof_dir, tmp_path, 2, "train", "train.txt")
    dev_p = _subset(minispoof_dir, tmp_path, 2, "dev", "dev.txt")
    # a two-source dev set: each source one bona fide + one spoof, first column = source
    dev = parse_protocol(_subset(minispoof_dir, tmp_path, 2, "dev", "d2.txt"))
    bona = [e for e in dev if not e.is_spoof]
    spoof = [e for e in dev if e.is_spoof]
    lines = [f"page{i} {b.file_id} - - bonafide\npage{i} {s.file_id} - {s.system} spoof"
             for i, (b, s) in enumerate(zip(bona, spoof))]  # fmt: skip
    lines.append(f"tts-only {spoof[0].file_id}X - D9 spoof")  # no bona fide: left out
    minispoof_flac = minispoof_dir / "flac"
    links = tmp_path / "links"
    links.mkdir()
    for e in dev:
        (links / f"{e.file_id}.flac").symlink_to(minispoof_flac / f"{e.file_id}.flac")
    (links / f"{spoof[0].file_id}X.flac").symlink_to(minispoof_flac / f"{spoof[0].file_id}.flac")
    matched_p = tmp_path / "matched.txt"
    matched_p.write_text("\n".join(lines) + "\n")
    out = tmp_path / "m.pt"
    rc = main(["train", "--arch", "tssd1d", "--protocol", str(train_p),
               "--audio-dir", str(minispoof_flac), "--dev-protocol", str(dev_p),
               "--matched-dev", str(matched_p), str(links),
               "--out", str(out), "--epochs", "1", "--batch-size", "4", "--no-progress"])  # fmt: skip
    assert rc == 0
    side = json.loads(out.with_suffix(".json").read_text())
    (h,) = side["history"]
    (m,) = h["dev_matched_eer"].values()
    assert 0.0 <= m <= 1.0
    assert h["dev_select"] == pytest.approx((h["dev_eer"] + m) / 2, abs=1e-6)
    assert side["data"]["matched_dev"] == [{"protocol": str(matched_p), "audio_dir": str(links)}]
    sources = side["data"]["train_sources"][str(train_p)]
    assert sources["first_column"] == sorted({e.speaker for e in parse_protocol(train_p)})
    assert sources["systems"] == sorted({e.system for e in parse_protocol(train_p) if e.is_spoof})
    assert "--matched-dev" in side["command"] and "matched EER" in side["recipe"]["selection"]
    assert "matched dev EER" in capsys.readouterr().out
