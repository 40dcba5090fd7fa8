"""Dev and eval EER after every epoch of a training run, for the model card's curves.

    python scripts/epoch_curves.py weights/candidates/NAME.pt [--eval PROTOCOL] [--audio-dir D]

Reads the run's sidecar (NAME.json: arch, per-epoch dev history) and every epoch's
weights that `python -m core train` kept (weights/candidates/runs/NAME.epochNN.pt), scores
MiniSpoof eval with each (whole file, the engine's scoring) and prints one row per epoch:
dev EER (clean, and the mean over the degraded dev conditions when the run had them) and
eval EER overall / known attacks / unseen attacks. Eval is measured here, after training;
no run chooses anything by it (epochs are chosen on dev, models by
scripts/select_models.py). `--json` prints the rows as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.audio.protocol import parse_protocol  # noqa: E402
from core.detectors.detect import Detector  # noqa: E402
from core.detectors.registry import file_sha256, load_model  # noqa: E402
from core.training.evaluate import score_protocol, spec_from_sidecar, summarize  # noqa: E402
from core.training.train import epoch_path  # noqa: E402

MINISPOOF = ROOT.parent / "shared" / "data" / "minispoof"


def curves(weights: Path, eval_protocol: Path, audio_dir: Path,
           matched: tuple[Path, Path] | None = None) -> list[dict]:
    side = json.loads(weights.with_suffix(".json").read_text())
    spec = spec_from_sidecar(weights)
    known = sorted(side["data"]["train_counts"]["systems"])
    entries = parse_protocol(eval_protocol)
    matched_entries = parse_protocol(matched[0]) if matched else None
    rows = []
    for rec in side.get("history", []):
        path = epoch_path(weights, rec["epoch"])
        if not path.exists():
            continue
        epoch_spec = dataclasses.replace(spec, weights=path.name, sha256=file_sha256(path))
        det = Detector(epoch_spec, load_model(epoch_spec, directory=path.parent, device="cpu"))
        summary = summarize(score_protocol(det, entries, audio_dir, progress=False), known=known)
        rows.append({
            "epoch": rec["epoch"],
            "dev_eer": 100 * rec["dev_eer"],
            "dev_select": 100 * rec["dev_select"] if "dev_select" in rec else None,
            "eval_eer": summary["overall"]["eer"],
            "eval_known": summary.get("known", {}).get("eer"),
            "eval_unseen": summary.get("unseen", {}).get("eer"),
            "best": rec["epoch"] == side.get("best_epoch"),
            "dev_matched": (100 * next(iter(rec["dev_matched_eer"].values()))
                            if rec.get("dev_matched_eer") else None),
        })  # fmt: skip
        if matched_entries is not None:
            m = summarize(score_protocol(det, matched_entries, matched[1], progress=False),
                          matched=True)["matched"]  # fmt: skip
            rows[-1]["eval_matched"] = m["matched"]
        print(f"epoch {rec['epoch']} scored", file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("weights", type=Path, help="the run's NAME.pt (its sidecar next to it)")
    ap.add_argument("--eval", type=Path, default=MINISPOOF / "protocols" / "minispoof.eval.txt")
    ap.add_argument("--audio-dir", type=Path, default=MINISPOOF / "flac")
    ap.add_argument("--matched-eval", nargs=2, type=Path, metavar=("PROTOCOL", "AUDIO_DIR"),
                    help="also the matched EER (per source) on this protocol, e.g. DemoSpoof eval")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows = curves(args.weights, args.eval, args.audio_dir, args.matched_eval)
    if not rows:
        print(f"no per-epoch weights for {args.weights} (runs before 2026-12-07 did not keep them)",
              file=sys.stderr)  # fmt: skip
        return 1
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    demo = any("eval_matched" in r for r in rows)
    head = ("| epoch | dev EER % (clean) | dev selection score % | eval EER % | eval known % "
            "| eval unseen % |")
    if demo:
        head += " dev matched % | matched eval % |"
    print(head)
    print("|---" * (8 if demo else 6) + "|")
    for r in rows:
        mark = " (kept)" if r["best"] else ""
        line = (f"| {r['epoch']}{mark} | {fmt(r['dev_eer'])} | {fmt(r['dev_select'])} | "
                f"{fmt(r['eval_eer'])} | {fmt(r['eval_known'])} | {fmt(r['eval_unseen'])} |")
        if demo:
            line += f" {fmt(r['dev_matched'])} | {fmt(r.get('eval_matched'))} |"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
