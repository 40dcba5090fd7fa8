"""`history`, `show`, `delete`: browse and prune the store from a terminal."""

from __future__ import annotations

import json

from core.audio.quality import InputQuality
from core.cli.common import add_db, one_line, print_err
from core.engine.service import Engine
from core.jsonsafe import finite
from core.judgement.combined import BANDS
from core.store import LABELS, SORT_KEYS, StoreError


def cmd_history(args) -> int:
    try:
        eng = Engine(args.db)
        page = eng.history(
            filename=args.filename,
            label=args.label,
            model=args.model,
            since=args.since,
            until=args.until,
            date_field=args.date_field,
            sort=args.sort,
            descending=not args.asc,
            limit=args.limit,
            offset=args.offset,
            band=args.band,
        )
    except (StoreError, ValueError) as e:
        print_err(one_line(e))
        return 1
    if args.json:
        try:
            doc = {**page.to_json(), "items": [judged(eng, it) for it in page.items]}
        except (StoreError, ValueError) as e:
            print_err(one_line(e))
            return 1
        print(json.dumps(finite(doc), indent=2))
        return 0
    print(f"{page.total} analyses; showing {len(page.items)} from {page.offset + 1}")
    for it in page.items:
        verdicts = "  ".join(
            f"{m} {p['label']} {p['p_spoof']:.3f}" for m, p in it["predictions"].items()
        )
        n_names = len(it["filenames"])
        more = f" (+{n_names - 1} names)" if n_names > 1 else ""
        print(
            f"{it['last_seen'][:19].replace('T', ' ')}  {it['sha256'][:12]}  "
            f"{it['duration']:7.2f} s  {it['filename']}{more}"
        )
        if verdicts:
            c = it["combined"]
            p = "" if c["p_spoof"] is None else f" {c['p_spoof']:.3f}"
            print(f"    combined {c['label']}{p}  {verdicts}  [{it['n_explanations']} explanations]")
        stored = InputQuality.from_json(it["quality"]) if it.get("quality") else None
        for w in stored.warnings if stored else ():
            print(f"    warning [{w.code}]: {w.message}" + (f" ({w.measured})" if w.measured else ""))
    return 0


def judged(eng: Engine, item: dict) -> dict:
    """
    A history item with what `analyze --json` says of the same file: its ``quality``
    (window facts included), ``warnings`` and ``combined``, rebuilt from the store as
    the dashboard does (no model runs). The store's item holds only the signal part.
    """
    a = eng.analysis(item["sha256"])
    if a is None:  # deleted meanwhile
        return item
    j = a.to_json()
    return {**item, "quality": j["quality"], "warnings": j["warnings"], "combined": j["combined"]}


def cmd_show(args) -> int:
    try:
        eng = Engine(args.db)
        a = eng.analysis(eng.find_sha256(args.sha256))
    except (StoreError, ValueError) as e:
        print_err(one_line(e))
        return 1
    assert a is not None, "find_sha256 returned a hash with no analysis"
    if args.json:
        print(json.dumps({**a.to_json(), "explanations": list(a.explanations)}, indent=2))
        return 0
    print(f"{a.sha256}  {a.duration:.2f} s  {', '.join(a.filenames)}")
    print(f"  first seen {a.first_seen}  last seen {a.last_seen}")
    for key, v in a.verdicts.items():
        print(
            f"  {key:<18} P(spoof) {v.p_spoof:.3f}  {v.label:<8} "
            f"weights {v.weights_sha256[:12]}"
        )
    for e in a.explanations:
        print(
            f"  {e['model']:<18} {e['method']:<8} window {e['window']}  "
            f"target {e['target_label']}  {e['seconds']:.2f} s  {e['arrays_bytes']} B"
        )
    return 0


def cmd_delete(args) -> int:
    try:
        eng = Engine(args.db)
        sha = eng.find_sha256(args.sha256)
        eng.delete(sha)
    except (StoreError, ValueError) as e:
        print_err(one_line(e))
        return 1
    print(f"deleted {sha} (rows and stored audio)")
    return 0


def add_cli(subparsers) -> None:
    p = subparsers.add_parser("history", help="list stored analyses")
    p.add_argument("--filename", metavar="TEXT", help="substring of an uploaded name")
    p.add_argument("--label", choices=LABELS, help="some model said this")
    p.add_argument("--band", choices=BANDS, help="the combined verdict's band")
    p.add_argument("--model", metavar="KEY")
    p.add_argument("--since", metavar="DATE", help="YYYY-MM-DD or ISO datetime (UTC)")
    p.add_argument("--until", metavar="DATE", help="inclusive for a date")
    p.add_argument("--date-field", choices=("last_seen", "first_seen"), default="last_seen")
    p.add_argument("--sort", choices=SORT_KEYS, default="last_seen")
    p.add_argument("--asc", action="store_true", help="ascending (default: descending)")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--json", action="store_true")
    add_db(p)
    p.set_defaults(func=cmd_history)

    p = subparsers.add_parser("show", help="one stored analysis by SHA-256 (or prefix)")
    p.add_argument("sha256")
    p.add_argument("--json", action="store_true")
    add_db(p)
    p.set_defaults(func=cmd_show)

    p = subparsers.add_parser("delete", help="delete a stored analysis and its audio")
    p.add_argument("sha256", help="full SHA-256 or a unique prefix (>= 6 hex digits)")
    add_db(p)
    p.set_defaults(func=cmd_delete)
