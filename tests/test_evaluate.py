"""EER on hand-computed cases, per-attack summaries, and the evaluate command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from core.judgement.metrics import compute_eer, matched_eer
from core.training.evaluate import (
    ScoredFile,
    format_summary,
    spec_from_sidecar,
    summarize,
    write_scores,
)


def test_eer_perfect_separation_is_zero():
    r = compute_eer(np.array([0.1, 0.2, 0.3]), np.array([0.7, 0.8]))
    assert r.eer == 0.0
    assert (r.n_bonafide, r.n_spoof) == (3, 2)


def test_eer_fully_reversed_is_one():
    assert compute_eer(np.array([0.9, 0.8]), np.array([0.1, 0.2])).eer == 1.0


def test_eer_all_tied_is_half():
    assert compute_eer(np.array([0.5, 0.5]), np.array([0.5, 0.5, 0.5])).eer == 0.5


def test_eer_one_overlap_by_hand():
    # spoof 0.35 sits below bona fide 0.4; at threshold 0.4 one of four spoofs is
    # missed (0.35 < 0.4) and one of four bona fide is rejected (0.4 >= 0.4): 25 %
    r = compute_eer(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.35, 0.5, 0.6, 0.7]))
    assert r.eer == pytest.approx(0.25)
    assert r.threshold == pytest.approx(0.4)


def test_eer_curves_do_not_meet_takes_mean_at_closest_point():
    # bona fide 0.8 outscores both spoofs. threshold 0.5: miss 0, false alarm 1/5
    # (|diff| 0.2); 0.6: miss 1/2, fa 1/5 (0.3); 0.4: miss 0, fa 2/5 (0.4).
    # closest at 0.5 -> (0 + 0.2) / 2 = 0.1
    r = compute_eer(np.array([0.1, 0.2, 0.3, 0.4, 0.8]), np.array([0.5, 0.6]))
    assert r.eer == pytest.approx(0.1)


def test_eer_is_invariant_to_monotone_rescaling():
    rng = np.random.default_rng(0)
    b, s = rng.normal(0, 1, 50), rng.normal(1, 1, 40)
    assert compute_eer(b, s).eer == pytest.approx(compute_eer(np.exp(b), np.exp(s)).eer)


def test_eer_needs_both_classes():
    with pytest.raises(ValueError, match="both classes"):
        compute_eer(np.array([]), np.array([0.5]))


def test_matched_eer_by_hand_per_source_mean_and_pooled():
    # source a: bona fide {0.1, 0.2}, spoofs {0.3, 0.4}: separated -> 0 %
    # source b: bona fide {0.6, 0.7}, spoofs {0.5, 0.8}: at threshold 0.7 one of two bona
    #   fide is rejected and one of two spoofs missed -> 50 %
    # matched = (0 + 50) / 2 = 25 %. Pooled: bona {0.1,0.2,0.6,0.7} vs spoofs
    #   {0.3,0.4,0.5,0.8}: at 0.6, FA 2/4 (0.6, 0.7), miss 3/4 (0.3, 0.4, 0.5); at 0.5,
    #   FA 2/4, miss 2/4 -> 50 %: pooling mixes the sources' levels, matching does not
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.5, 0.8])
    is_spoof = np.array([0, 0, 1, 1, 0, 0, 1, 1], dtype=bool)
    sources = np.array(["a"] * 4 + ["b"] * 4)
    m = matched_eer(scores, is_spoof, sources)
    assert m["per_source"]["a"]["eer"] == pytest.approx(0.0)
    assert m["per_source"]["b"]["eer"] == pytest.approx(50.0)
    assert m["matched"] == pytest.approx(25.0)
    assert m["n_sources"] == 2 and m["left_out"] == {}
    assert m["pooled"]["eer"] == pytest.approx(
        100 * compute_eer(scores[~is_spoof], scores[is_spoof]).eer)
    assert m["pooled"]["eer"] == pytest.approx(50.0)


def test_matched_eer_leaves_out_a_source_without_bona_fide_and_says_so():
    scores = np.array([0.1, 0.9, 0.95, 0.0, 0.01])
    is_spoof = np.array([0, 1, 1, 1, 1], dtype=bool)
    sources = np.array(["a", "a", "a", "tts-only", "tts-only"])
    m = matched_eer(scores, is_spoof, sources)
    # "tts-only" has spoofs scored below every bona fide: averaged in, it would be 100 %
    assert m["per_source"]["tts-only"] == {
        "n_bonafide": 0, "n_spoof": 2, "eer": None, "left_out": "no bona fide"}
    assert m["left_out"] == {"tts-only": "no bona fide"}
    assert m["matched"] == pytest.approx(0.0) and m["n_sources"] == 1
    assert m["pooled"]["n_spoof"] == 4


def test_matched_eer_with_no_usable_source_is_none_not_zero():
    m = matched_eer(np.array([0.2, 0.3]), np.array([True, True]), np.array(["x", "y"]))
    assert m["matched"] is None and m["n_sources"] == 0 and m["pooled"]["eer"] is None


def test_summarize_matched_reads_the_first_column_and_prints_left_out_sources():
    scored = [
        ScoredFile("B1", "-", "bonafide", 0.1, source="pageA"),
        ScoredFile("S1", "D001", "spoof", 0.9, source="pageA"),
        ScoredFile("B2", "-", "bonafide", 0.9, source="pageB"),
        ScoredFile("S2", "D002", "spoof", 0.2, source="pageB"),
        ScoredFile("S3", "D003", "spoof", 0.5, source="pageC"),
    ]
    s = summarize(scored, matched=True)
    assert s["matched"]["per_source"]["pageA"]["eer"] == 0.0
    assert s["matched"]["per_source"]["pageB"]["eer"] == 100.0
    assert s["matched"]["matched"] == pytest.approx(50.0)
    text = format_summary(s)
    assert "matched    EER  50.00 %   mean over 2 sources" in text
    assert "pageC" in text and "left out of the mean: no bona fide" in text
    assert "matched" not in summarize(scored)


def _scored():
    bona = [ScoredFile(f"B{i}", "-", "bonafide", v) for i, v in enumerate([0.1, 0.2, 0.3, 0.4])]
    a = [ScoredFile(f"A{i}", "A01", "spoof", v) for i, v in enumerate([0.8, 0.9])]  # separated
    b = [ScoredFile(f"C{i}", "A02", "spoof", v) for i, v in enumerate([0.0, 0.05])]  # reversed
    return bona + a + b


def test_summarize_per_system_known_and_unseen():
    s = summarize(_scored(), known=["A01"])
    assert s["per_system"]["A01"]["eer"] == 0.0
    assert s["per_system"]["A02"]["eer"] == 100.0
    assert s["per_system"]["A02"]["n_bonafide"] == 4 and s["per_system"]["A02"]["n_spoof"] == 2
    assert s["known"]["eer"] == 0.0 and s["unseen"]["eer"] == 100.0
    assert (s["known_systems"], s["unseen_systems"]) == (["A01"], ["A02"])
    # overall: two spoofs above and two below every bona fide; at threshold 0.3
    # half the spoofs are missed (0.0, 0.05) and half the bona fide rejected (0.3, 0.4)
    assert s["overall"]["eer"] == pytest.approx(50.0)


def test_write_scores_format(tmp_path):
    out = tmp_path / "scores.txt"
    write_scores(out, _scored())
    lines = out.read_text().splitlines()
    assert lines[0].split() == ["B0", "-", "bonafide", "0.10000000"]
    assert lines[4].split()[:3] == ["A0", "A01", "spoof"]
    assert len(lines) == 8


def _random_tssd1d(tmp_path, seed=0):
    """an untrained tssd1d weights file with a sidecar, as `train` writes one"""
    from core.detectors.registry import file_sha256
    from core.training.train import build_net

    torch.manual_seed(seed)
    net = build_net("tssd1d").eval()
    path = tmp_path / "rand.pt"
    torch.save(net.state_dict(), path)
    side = {"arch": "tssd1d", "config": {}, "sha256": file_sha256(path), "command": "test",
            "data": {"train_counts": {"systems": {"M01": 1}}}}  # fmt: skip
    path.with_suffix(".json").write_text(json.dumps(side))
    return path


def test_evaluate_command_scores_like_the_detector(tmp_path, minispoof_dir, capsys):
    from core.audio.decode import load_audio
    from core.cli import main
    from core.detectors.detect import Detector
    from core.detectors.registry import load_model

    lines = (minispoof_dir / "protocols" / "minispoof.eval.txt").read_text().splitlines()
    bona = [l for l in lines if l.endswith("bonafide")][:2]
    spoof = [l for l in lines if l.endswith("spoof")][:2]
    proto = tmp_path / "p.txt"
    proto.write_text("\n".join(bona + spoof) + "\n")
    weights = _random_tssd1d(tmp_path)
    scores = tmp_path / "s.txt"
    rc = main(["evaluate", "--model", str(weights), "--protocol", str(proto),
               "--audio-dir", str(minispoof_dir / "flac"), "--json", "--scores", str(scores),
               "--no-progress"])  # fmt: skip
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    assert result["overall"]["n_bonafide"] == 2 and result["overall"]["n_spoof"] == 2
    assert result["known_systems"] == [s for s in ["M01"] if s in result["per_system"]]
    rows = [l.split() for l in scores.read_text().splitlines()]
    assert [r[0] for r in rows] == [l.split()[1] for l in bona + spoof]
    # the score file holds the engine's whole-file P(spoof)
    spec = spec_from_sidecar(weights)
    det = Detector(spec, load_model(spec, directory=tmp_path, device="cpu"))
    audio = load_audio(minispoof_dir / "flac" / f"{rows[0][0]}.flac")
    assert float(rows[0][3]) == pytest.approx(det.score(audio).p_spoof, abs=1e-6)


def test_evaluate_refuses_weights_that_do_not_match_the_sidecar(tmp_path, capsys):
    from core.cli import main

    weights = _random_tssd1d(tmp_path)
    weights.write_bytes(weights.read_bytes() + b"x")
    proto = tmp_path / "p.txt"
    proto.write_text("S F1 - - bonafide\n")
    rc = main(["evaluate", "--model", str(weights), "--protocol", str(proto),
               "--audio-dir", str(tmp_path), "--no-progress"])  # fmt: skip
    assert rc == 1
    assert "SHA-256" in capsys.readouterr().err


def test_evaluate_degrade_one_summary_per_condition_clean_equals_plain(
    tmp_path, minispoof_dir, capsys
):
    from core.cli import main

    lines = (minispoof_dir / "protocols" / "minispoof.eval.txt").read_text().splitlines()
    proto = tmp_path / "p.txt"
    proto.write_text("\n".join([l for l in lines if l.endswith("bonafide")][:2]
                               + [l for l in lines if l.endswith("spoof")][:2]) + "\n")  # fmt: skip
    weights = _random_tssd1d(tmp_path)
    base = ["evaluate", "--model", str(weights), "--protocol", str(proto),
            "--audio-dir", str(minispoof_dir / "flac"), "--json", "--no-progress"]  # fmt: skip
    assert main(base + ["--scores", str(tmp_path / "plain.txt")]) == 0
    plain = json.loads(capsys.readouterr().out)
    conds = ["clean", "mp3:32k", "telephone", "noise:10db"]
    assert main(base + ["--degrade", ",".join(conds), "--scores", str(tmp_path / "s.txt")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert list(result["conditions"]) == conds
    for summary in result["conditions"].values():
        assert summary["overall"]["n_bonafide"] == 2 and summary["overall"]["n_spoof"] == 2
        assert set(summary["per_system"]) == set(plain["per_system"])
    clean = result["conditions"]["clean"]
    for k in ("overall", "per_system", "known_systems", "unseen_systems", "known", "unseen"):
        assert clean.get(k) == plain.get(k), k  # the undegraded summary, key for key
    plain_scores = (tmp_path / "plain.txt").read_text()
    assert (tmp_path / "s.clean.txt").read_text() == plain_scores
    noisy = (tmp_path / "s.noise-10db.txt").read_text()
    assert noisy != plain_scores  # 10 dB of noise moves an untrained net's scores
    # seeded per file: a rerun of one condition reproduces its scores exactly
    assert main(base + ["--degrade", "noise:10db", "--scores", str(tmp_path / "r.txt")]) == 0
    capsys.readouterr()
    assert (tmp_path / "r.noise-10db.txt").read_text() == noisy


def test_evaluate_degrade_text_output_and_bad_condition(tmp_path, minispoof_dir, capsys):
    from core.cli import main

    lines = (minispoof_dir / "protocols" / "minispoof.eval.txt").read_text().splitlines()
    proto = tmp_path / "p.txt"
    proto.write_text("\n".join([l for l in lines if l.endswith("bonafide")][:1]
                               + [l for l in lines if l.endswith("spoof")][:1]) + "\n")  # fmt: skip
    weights = _random_tssd1d(tmp_path)
    base = ["evaluate", "--model", str(weights), "--protocol", str(proto),
            "--audio-dir", str(minispoof_dir / "flac"), "--no-progress"]  # fmt: skip
    assert main(base + ["--degrade", "bogus:3x"]) == 1
    assert "unknown degradation 'bogus:3x'" in capsys.readouterr().err
    assert main(base + ["--degrade", "gain:-12db,opus:24k"]) == 0
    out = capsys.readouterr().out
    assert "[gain:-12db]" in out and "[opus:24k]" in out
    assert out.count("overall    EER") == 2
