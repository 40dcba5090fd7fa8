"""`evaluate`: EER of a detector on a protocol, optionally under degradations."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from core.audio.protocol import parse_protocol
from core.detectors.detect import Detector
from core.detectors.registry import ModelSpec, WeightsError, load_model
from core.training.evaluate import (
    format_summary,
    known_systems_of,
    resolve_model,
    score_protocol,
    summarize,
    write_scores,
)


def cmd_evaluate(args) -> int:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        spec, directory = resolve_model(args.model)
        net = load_model(spec, directory=directory)
        entries = parse_protocol(args.protocol)
        detector = Detector(spec, net)
        if args.degrade:
            return _evaluate_degraded(args, spec, directory, detector, entries)
        scored = score_protocol(detector, entries, args.audio_dir, progress=not args.no_progress)
    except (WeightsError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    known = args.known.split(",") if args.known else known_systems_of(spec, directory)
    summary = summarize(scored, known=known, matched=args.matched)
    if args.scores:
        write_scores(args.scores, scored)
    result = {**_result_header(args, spec, len(scored)), **summary}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"model {spec.key} ({spec.arch}, sha256 {spec.sha256[:12]}...) on {args.protocol}")
        print(format_summary(summary))
        if args.scores:
            print(f"scores written to {args.scores}")
    return 0


def _result_header(args, spec: ModelSpec, n_files: int) -> dict:
    return {
        "model": spec.key,
        "arch": spec.arch,
        "weights_sha256": spec.sha256,
        "protocol": str(args.protocol),
        "n_files": n_files,
        "score": "whole-file mean window P(spoof) (core.detectors.detect.Detector.score)",
    }


def _evaluate_degraded(args, spec: ModelSpec, directory: Path, detector, entries) -> int:
    """--degrade: the same summary once per condition (core.training.robustness)"""
    from core.training.robustness import (
        condition_scores_path,
        format_conditions,
        parse_conditions,
        score_degraded,
    )

    conditions = parse_conditions(args.degrade)
    by_cond = score_degraded(
        detector, entries, args.audio_dir, conditions, progress=not args.no_progress
    )
    known = args.known.split(",") if args.known else known_systems_of(spec, directory)
    summaries = {
        c: summarize(scored, known=known, matched=args.matched) for c, scored in by_cond.items()
    }
    if args.scores:
        for c, scored in by_cond.items():
            write_scores(condition_scores_path(args.scores, c), scored)
    if args.json:
        result = {**_result_header(args, spec, len(entries)), "conditions": summaries}
        print(json.dumps(result, indent=2))
    else:
        print(f"model {spec.key} ({spec.arch}, sha256 {spec.sha256[:12]}...) on {args.protocol}")
        print(format_conditions(summaries, format_summary))
        if args.scores:
            print(f"scores written to {condition_scores_path(args.scores, '<condition>')}")
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("evaluate", help="EER of a model on a protocol (overall, per attack)")
    p.add_argument(
        "--model", required=True, help="registry key, or weights/NAME.pt with its sidecar"
    )
    p.add_argument("--protocol", required=True)
    p.add_argument("--audio-dir", required=True, help="directory of FILE_ID.flac")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--scores", metavar="OUT", help="write FILE_ID SYSTEM KEY SCORE lines")
    p.add_argument(
        "--known", metavar="SYS,SYS",
        help="attack systems seen in training (default: from the model's sidecar)",
    )  # fmt: skip
    p.add_argument(
        "--degrade", metavar="COND,COND",
        help="score under each condition: clean, telephone, mp3:32k, ogg:24k (opus), "
        "noise:10db, gain:-12db (seeded per file); --scores writes OUT.COND files",
    )  # fmt: skip
    p.add_argument(
        "--matched", action="store_true",
        help="the protocol's first column is the source (DemoSpoof): EER per source, "
        "spoofs against that source's bona fide, their mean and the pooled EER",
    )  # fmt: skip
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_evaluate)
