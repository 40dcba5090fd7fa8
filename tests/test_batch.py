"""Batch analysis of a minispoof subset, locally and on a local Ray instance."""

import numpy as np
import pytest

from core.audio.protocol import parse_protocol
from core.corpus.batch import run_batch
from core.corpus.summary import summarise_batch
from core.engine.service import Engine

MODEL = "aasist-l-official"  # the cheapest real model with published weights


@pytest.fixture
def subset(tmp_path, minispoof_dir):
    """3 bona fide + 3 spoof eval clips linked into a folder, plus one corrupt file."""
    entries = parse_protocol(minispoof_dir / "protocols" / "minispoof.eval.txt")
    bona = [e for e in entries if e.key == "bonafide"][:3]
    spoof = [e for e in entries if e.key == "spoof"][:3]
    audio = tmp_path / "audio"
    audio.mkdir()
    for e in bona + spoof:
        (audio / f"{e.file_id}.flac").symlink_to(minispoof_dir / "flac" / f"{e.file_id}.flac")
    corrupt = type(spoof[0])(speaker="X", file_id="MS_E_BROKEN", system="M01", key="spoof", line=0)
    (audio / "MS_E_BROKEN.flac").write_bytes(b"fLaC but not really" * 20)
    return bona + spoof + [corrupt], audio


def _stored(db, entries):
    out = {}
    eng = Engine(db)
    for f in eng.batch_files("subset"):
        if f["status"] == "done":
            a = eng.analysis(f["sha256"])
            out[f["file_id"]] = {k: v.p_spoof for k, v in a.verdicts.items()}
    return out


def test_local_batch_fills_the_store_and_resumes(tmp_path, subset, official_weights_dir):
    entries, audio = subset
    db = tmp_path / "local.db"
    rep = run_batch(entries, audio, name="subset", models=[MODEL], methods=["gradcam"],
                    workers=1, db=db, progress=False)
    assert rep.computed == 6 and rep.skipped == 0
    assert list(rep.failed) == ["MS_E_BROKEN"] and "damaged FLAC file" in rep.failed["MS_E_BROKEN"]
    files = {f["file_id"]: f for f in Engine(db).batch_files("subset")}
    assert files["MS_E_BROKEN"]["status"] == "failed" and files["MS_E_BROKEN"]["error"]
    assert sum(f["status"] == "done" for f in files.values()) == 6
    stored = _stored(db, entries)
    assert len(stored) == 6 and all(0 <= v[MODEL] <= 1 for v in stored.values())

    # rerun: nothing is computed again
    again = run_batch(entries, audio, name="subset", models=[MODEL], methods=["gradcam"],
                      workers=1, db=db, progress=False)
    assert again.computed == 0 and again.skipped == 6 and list(again.failed) == ["MS_E_BROKEN"]

    summary = summarise_batch(Engine(db), "subset")
    rows = {r["system"]: r for r in summary.eer}
    assert rows["all"]["n_bonafide"] == 3 and rows["all"]["n_spoof"] == 3
    # one Grad-CAM profile per attack system present (and one for bona fide, "-")
    systems = {e.system for e in entries[:6]}
    profiles = {p.system: p for p in summary.profiles if p.method == "gradcam"}
    assert set(profiles) == systems
    for p in profiles.values():
        assert p.time.shape == (20,) and np.isfinite(p.time).all()
        # each file's profile has unit L1 norm; their mean (signs flipped for bona
        # fide targets) can only shrink: 0 < |mean| <= 1
        assert 0 < np.abs(p.time).sum() <= 1 + 1e-9


def test_ray_engine_stores_the_same_results_as_local(tmp_path, subset, official_weights_dir):
    pytest.importorskip("ray")
    entries, audio = subset
    entries = entries[2:5]  # 1 bona fide + 2 spoof keep the Ray run short
    local_db, ray_db = tmp_path / "l.db", tmp_path / "r.db"
    run_batch(entries, audio, name="subset", models=[MODEL], workers=1, db=local_db, progress=False)
    rep = run_batch(entries, audio, name="subset", models=[MODEL], workers=2, engine="ray",
                    db=ray_db, progress=False)
    assert rep.computed == 3 and not rep.failed
    a, b = _stored(local_db, entries), _stored(ray_db, entries)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k][MODEL], b[k][MODEL], atol=1e-6)
