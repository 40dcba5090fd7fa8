"""`calibrate`: fit per-model calibration, fusion, bands and widenings on dev; measure on eval.

    python -m core calibrate --protocol DEV --audio-dir D [--protocol DEV2 --audio-dir D2]
                             [--matched-protocol DEMO_DEV D3] [--eval-protocol EVAL ...]

Several dev protocols are pooled; a plain ``--protocol`` is one source, a
``--matched-protocol``'s first column names its sources (DemoSpoof pages). With two or more
sources the bands and widenings are chosen on each source held out in turn. Writes
``calibration.json`` (+ ``.sha256``) and ``familiarity.npz`` next to the weights, and with
``--eval-protocol`` / ``--eval-matched`` also ``calibration.metrics.json``: per model and
combined EER, Cllr, min Cllr, ECE, reliability, the verdicts' bands as the app decides
them, and the held-out numbers per dev source.
"""

from __future__ import annotations

import json
from pathlib import Path

from core.audio.decode import AudioError
from core.audio.protocol import parse_protocol
from core.cli.common import one_line, print_err
from core.detectors.registry import WeightsError, available_models
from core.judgement.assessment import METRICS_NAME, calibration_path, load_familiarity
from core.training.calibrate import DEFAULT_DEGRADE, DevSet, cached_outputs, fit
from core.training.held_out import held_out_attacks
from core.training.measure import measure_verdicts


def _pairs(protocols, dirs, what: str) -> list[tuple[str, str]]:
    protocols, dirs = list(protocols or ()), list(dirs or ())
    if len(dirs) == 1 and len(protocols) > 1:
        dirs = dirs * len(protocols)
    if len(protocols) != len(dirs):
        raise ValueError(f"give one {what}-audio-dir per {what}-protocol "
                         f"({len(protocols)} protocols, {len(dirs)} audio dirs)")  # fmt: skip
    return list(zip(protocols, dirs))


def familiarity_sets(detectors, given) -> list:
    """--familiarity-protocol pairs, else each model's training protocols from its sidecar"""
    if given:
        return [(parse_protocol(p), d) for p, d in given]
    from core.detectors.registry import weights_dir

    found: dict[str, str] = {}
    for det in detectors.values():
        side = (weights_dir() / det.spec.weights).with_suffix(".json")
        if not side.exists():
            continue
        data = json.loads(side.read_text()).get("data", {})
        pairs = [(data.get("train_protocol"), data.get("audio_dir"))]
        pairs += [(x.get("protocol"), x.get("audio_dir")) for x in data.get("extra_train", [])]
        for p, d in pairs:
            if p and d and Path(p).exists() and Path(d).is_dir():
                found.setdefault(p, d)
    return [(parse_protocol(p), d) for p, d in found.items()]


def _print_verdicts(name: str, r: dict) -> None:
    v = r["verdict"]
    c = r.get("combined") or {}
    lo, hi = c.get("ece_ci95", (float("nan"), float("nan")))
    err = v["error_rate_outside"]
    print(f"{name}: {v['n']} files: confidently wrong {100 * v['confidently_wrong_share']:.1f} %, "
          f"confident {100 * v['confident_share']:.1f} %, uncertain "
          f"{100 * v['uncertain_share']:.1f} %, too short {100 * v['too_short_share']:.1f} %; "
          f"errors among confident calls {'n/a' if err is None else f'{100 * err:.1f} %'}; "
          f"combined ECE {c.get('ece', float('nan')):.3f} ({lo:.3f}-{hi:.3f}), "
          f"EER {100 * c.get('eer', float('nan')):.1f} %")  # fmt: skip
    for s, row in (v.get("per_source") or {}).items():
        ece = "n/a" if row["ece"] is None else f"{row['ece']:.3f}"
        print(f"    {s:<18} n {row['n']:4d}  confidently wrong "
              f"{100 * row['confidently_wrong_share']:5.1f} %  confident "
              f"{100 * row['confident_share']:5.1f} %  ECE {ece}")  # fmt: skip


def cmd_calibrate(args) -> int:
    from core.engine.service import get_detector

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else calibration_path()
    progress = not args.no_progress
    try:
        keys = args.model or available_models()
        if not keys:
            raise ValueError("no model has verified weights: run python -m core models")
        detectors = {k: get_detector(k) for k in keys}
        sets = [DevSet(Path(p).name, parse_protocol(p), d)
                for p, d in _pairs(args.protocol, args.audio_dir, "")]  # fmt: skip
        sets += [DevSet(Path(p).name, parse_protocol(p), d, by_source=True)
                 for p, d in args.matched_protocol or ()]  # fmt: skip
        if not sets:
            raise ValueError("give at least one dev set: --protocol P --audio-dir D")
        degrade = tuple(c for c in (args.degrade or ",".join(DEFAULT_DEGRADE)).split(",") if c)
        if args.degrade == "none":
            degrade = ()
        pool = ("clean",)
        if args.pool:
            from core.training.robustness import parse_conditions

            pool = tuple(parse_conditions(args.pool))
        fam_sets = [] if args.no_familiarity else familiarity_sets(
            detectors, args.familiarity_protocol)  # fmt: skip
        report: dict = {}
        cal = fit(detectors, sets, degrade=degrade, pool=pool, max_error=args.max_error,
                  progress=progress, familiarity_sets=fam_sets,
                  familiarity_out=out.with_name("familiarity.npz"), report=report)  # fmt: skip
        cal.save(out)
        print(f"wrote {out} and {out.name}.sha256 (models: {', '.join(sorted(cal.models))})")
        full = cal.fusion.select(tuple(detectors))
        print(f"bands: likely bona fide below {full.bands.lo:.3f}, likely spoof above "
              f"{full.bands.hi:.3f}; widen (log-odds) {json.dumps(cal.widen)}")  # fmt: skip
        for s, row in report.get("held_out_sources", {}).items():
            print(f"held out {s:<20} n {row['n']:4d}  confidently wrong "
                  f"{100 * row['confidently_wrong_share']:5.1f} %  confident "
                  f"{100 * row['confident_share']:5.1f} %")  # fmt: skip
        if len(sets) == 1 and len({e.system for e in sets[0].entries if e.key == "spoof"}) >= 2:
            d = sets[0]
            import numpy as np

            dev = {k: np.concatenate([cached_outputs(det, d.entries, d.audio_dir, c,
                                                     progress=False)[0] for c in pool])
                   for k, det in detectors.items()}  # fmt: skip
            report["dev_held_out_attacks"] = held = held_out_attacks(dev, d.entries)
            print(f"dev, each attack held out of the fit in turn ({len(held['attacks'])} folds): "
                  f"EER {100 * held['eer']:.1f} %  Cllr {held['cllr']:.3f}  "
                  f"ECE {held['ece']:.3f}")  # fmt: skip
        eval_dirs = args.eval_audio_dir or (args.audio_dir or [])[:1]
        evals = [(p, d, False) for p, d in _pairs(args.eval_protocol, eval_dirs, "eval-")]
        evals += [(p, d, True) for p, d in args.eval_matched or ()]
        if evals:
            fam, problem = load_familiarity(cal, out.parent)
            if problem:
                print(problem)
            results = []
            for p, d, by_source in evals:
                ev = parse_protocol(p)
                outputs = {k: cached_outputs(det, ev, d, progress=progress, embeddings=True)
                           for k, det in detectors.items()}  # fmt: skip
                r = measure_verdicts(cal, fam, outputs, ev, d, by_source=by_source,
                                     progress=progress)  # fmt: skip
                r["protocol"] = str(p)
                results.append(r)
                _print_verdicts(Path(p).name, r)
            result = {**results[0], "evals": results, **report}
            path = out.with_name(METRICS_NAME)
            path.write_text(json.dumps(result, indent=2) + "\n")
            print(f"wrote {path}")
    except (WeightsError, AudioError, ValueError, FileNotFoundError) as e:
        print_err(one_line(e))
        return 1
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("calibrate", help="fit the combined verdict on dev (and measure on eval)")
    p.add_argument("--protocol", action="append", metavar="P",
                   help="dev protocol, one source (repeatable; pair each with --audio-dir)")
    p.add_argument("--audio-dir", action="append", metavar="D",
                   help="directory of FILE_ID.flac, one per --protocol (or one for all)")
    p.add_argument("--matched-protocol", nargs=2, action="append", metavar=("P", "D"),
                   help="dev protocol whose first column names its sources (DemoSpoof), with "
                   "its audio directory; pooled with the others (repeatable)")
    p.add_argument("--model", action="append", metavar="KEY",
                   help="models to fit (default: every model with verified weights)")
    p.add_argument("--degrade", metavar="COND,COND",
                   help="dev degradations that widen the band "
                   f"(default {','.join(DEFAULT_DEGRADE)}; "
                   "'none' for none)")
    p.add_argument("--pool", metavar="COND,COND",
                   help="fit on dev under these conditions at once (e.g. clean,noise:15db)")
    p.add_argument("--familiarity-protocol", nargs=2, action="append", metavar=("P", "D"),
                   help="training files for the unfamiliar-audio measure (default: each "
                   "model's training protocols from its sidecar, where present)")
    p.add_argument("--no-familiarity", action="store_true",
                   help="fit no unfamiliar-audio measure")
    p.add_argument("--max-error", type=float, default=0.05,
                   help="share of wrong calls allowed outside the uncertain band on dev")
    p.add_argument("--out", help="calibration file (default: calibration.json by the weights)")
    p.add_argument("--eval-protocol", action="append", metavar="P",
                   help="also measure on this protocol (repeatable), e.g. MiniSpoof eval")
    p.add_argument("--eval-audio-dir", action="append", metavar="D",
                   help="its audio (one per --eval-protocol, or one for all; default: the "
                   "first --audio-dir)")
    p.add_argument("--eval-matched", nargs=2, action="append", metavar=("P", "D"),
                   help="measure on this protocol, per source too (its first column)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_calibrate)
