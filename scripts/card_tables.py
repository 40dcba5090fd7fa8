"""Markdown tables for weights/MODEL_CARD.md from scripts/eval_card.sh's output.

    python scripts/card_tables.py NAME [NAME ...]    # names of cache/eval/NAME.json

Prints the clean eval row (overall, known, unseen, each attack) and the robustness row
(overall / known / unseen EER per condition) of each model, as the card's tables have,
and where cache/eval/NAME.demo.json exists the DemoSpoof eval row: matched EER (mean over
sources), pooled EER and the EER per source.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ATTACKS = ["M01", "M02", "M03", "M04", "M05", "M06", "M07", "M08", "M09", "M10"]


def pooled(summary: dict, group: str) -> float:
    """the pooled EER of the known or unseen attacks (evaluate's summary keys)"""
    part = summary.get(group) or {}
    return float(part.get("eer", float("nan")))


def main(names: list[str]) -> int:
    rows = {n: json.loads((Path("cache/eval") / f"{n}.json").read_text()) for n in names}
    print("| model | overall | known | unseen | " + " | ".join(ATTACKS) + " |")
    print("|---" * (4 + len(ATTACKS)) + "|")
    for n, d in rows.items():
        c = d["conditions"]["clean"]
        per = c["per_system"]
        cells = [f"{per[a]['eer']:.2f}" if a in per else "-" for a in ATTACKS]
        print(f"| {n} | {c['overall']['eer']:.2f} | {pooled(c, 'known'):.2f} | "
              f"{pooled(c, 'unseen'):.2f} | " + " | ".join(cells) + " |")  # fmt: skip
    print()
    conds = list(next(iter(rows.values()))["conditions"])
    print("| model | " + " | ".join(conds) + " |")
    print("|---" * (1 + len(conds)) + "|")
    for n, d in rows.items():
        if set(conds) - set(d["conditions"]):
            continue  # scored clean only (CONDITIONS=clean)
        cells = []
        for cond in conds:
            s = d["conditions"][cond]
            cells.append(f"{s['overall']['eer']:.1f} / {pooled(s, 'known'):.1f} / {pooled(s, 'unseen'):.1f}")
        print(f"| {n} | " + " | ".join(cells) + " |")
    demo = {n: json.loads(p.read_text()) for n in names
            if (p := Path("cache/eval") / f"{n}.demo.json").exists()}  # fmt: skip
    if demo:
        print()
        sources = sorted({s for d in demo.values() for s in d["matched"]["per_source"]})
        print("| model | matched | pooled | " + " | ".join(sources) + " |")
        print("|---" * (3 + len(sources)) + "|")
        for n, d in demo.items():
            m = d["matched"]
            cells = []
            for src in sources:
                r = m["per_source"].get(src)
                cells.append("-" if r is None or r["eer"] is None else f"{r['eer']:.1f}")
            print(f"| {n} | {m['matched']:.2f} | {m['pooled']['eer']:.2f} | "
                  + " | ".join(cells) + " |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
