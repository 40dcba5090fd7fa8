"""`calibrate`: fit per-model calibration, fusion and bands on dev; measure on eval.

    python -m core calibrate --protocol DEV --audio-dir D [--eval-protocol EVAL ...]

writes ``calibration.json`` (+ ``.sha256``) next to the weights, and with
``--eval-protocol`` also ``calibration.metrics.json``: EER, Cllr, min Cllr, ECE and a
reliability table per model and for the combination (the Models page draws it).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from core.audio.decode import AudioError
from core.audio.protocol import parse_protocol
from core.cli.common import one_line, print_err
from core.detectors.registry import WeightsError, available_models
from core.judgement.assessment import METRICS_NAME, calibration_path
from core.judgement.calibration import as_labels
from core.training.calibrate import (
    DEFAULT_DEGRADE,
    cached_scores,
    fit,
    held_out_attacks,
    measure,
)


def cmd_calibrate(args) -> int:
    from core.engine.service import get_detector

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else calibration_path()
    try:
        keys = args.model or available_models()
        if not keys:
            raise ValueError("no model has verified weights: run python -m core models")
        detectors = {k: get_detector(k) for k in keys}
        entries = parse_protocol(args.protocol)
        degrade = tuple(c for c in (args.degrade or ",".join(DEFAULT_DEGRADE)).split(",") if c)
        if args.degrade == "none":
            degrade = ()
        pool = ("clean",)
        if args.pool:
            from core.training.robustness import parse_conditions

            pool = tuple(parse_conditions(args.pool))
        cal = fit(detectors, entries, args.audio_dir, degrade=degrade, pool=pool,
                  max_error=args.max_error, progress=not args.no_progress)  # fmt: skip
        cal.save(out)
        print(f"wrote {out} and {out.name}.sha256 (models: {', '.join(sorted(cal.models))})")
        full = cal.fusion.select(tuple(detectors))
        print(f"bands on dev: likely bona fide below {full.bands.lo:.3f}, likely spoof "
              f"above {full.bands.hi:.3f}; widen {json.dumps(cal.widen)}")  # fmt: skip
        held = None
        if len({e.system for e in entries if e.key == "spoof"}) >= 2:
            dev = {k: np.concatenate([cached_scores(d, entries, args.audio_dir, c, progress=False)
                                      for c in pool]) for k, d in detectors.items()}  # fmt: skip
            held = held_out_attacks(dev, entries)
            print(f"dev, each attack held out of the fit in turn ({len(held['attacks'])} folds): "
                  f"EER {100 * held['eer']:.1f} %  Cllr {held['cllr']:.3f}  ECE {held['ece']:.3f}")  # fmt: skip
        if args.eval_protocol:
            ev = parse_protocol(args.eval_protocol)
            ev_dir = args.eval_audio_dir or args.audio_dir
            scores = {k: cached_scores(d, ev, ev_dir, progress=not args.no_progress)
                      for k, d in detectors.items()}  # fmt: skip
            result = measure(cal, scores, as_labels([e.key for e in ev]))
            result["protocol"] = str(args.eval_protocol)
            if held is not None:
                result["dev_held_out_attacks"] = held
            path = out.with_name(METRICS_NAME)
            path.write_text(json.dumps(result, indent=2) + "\n")
            for name, m in [*result["models"].items(), ("combined", result.get("combined"))]:
                if m:
                    lo, hi = m["ece_ci95"]
                    print(f"{name:<20} EER {100 * m['eer']:5.1f} %  Cllr {m['cllr']:.3f}  "
                          f"min Cllr {m['min_cllr']:.3f}  ECE {m['ece']:.3f} "
                          f"(95 % bootstrap {lo:.3f}-{hi:.3f})")  # fmt: skip
            c = result.get("combined")
            if c:
                err = c["error_rate_outside"]
                print(f"uncertain band: {100 * c['uncertain_share']:.1f} % of files; error "
                      f"rate outside it {'n/a' if err is None else f'{100 * err:.1f} %'}")
            print(f"wrote {path}")
    except (WeightsError, AudioError, ValueError, FileNotFoundError) as e:
        print_err(one_line(e))
        return 1
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("calibrate", help="fit calibration + fusion + bands on a dev protocol")
    p.add_argument("--protocol", required=True, help="dev protocol (ASVspoof 2019 LA format)")
    p.add_argument("--audio-dir", required=True, help="directory of FILE_ID.flac")
    p.add_argument("--model", action="append", metavar="KEY",
                   help="model to include (repeatable; default: every installed model)")
    p.add_argument("--degrade", metavar="COND,COND",
                   help=f"dev degradations that set how far warnings widen the band "
                        f"(default {','.join(DEFAULT_DEGRADE)}; 'none' for none)")
    p.add_argument("--pool", metavar="COND,COND",
                   help="fit on dev under all these conditions pooled, e.g. "
                   "clean,noise:15db,mp3:32k,telephone (default: clean dev only)")
    p.add_argument("--max-error", type=float, default=0.05,
                   help="largest share of wrong confident calls on dev (default 0.05)")
    p.add_argument("--out", help="calibration file (default: calibration.json by the weights)")
    p.add_argument("--eval-protocol", help="also measure on this protocol (e.g. eval)")
    p.add_argument("--eval-audio-dir", help="its audio (default: --audio-dir)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_calibrate)
