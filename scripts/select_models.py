"""Which weights ship: the dev-only selection rule of scripts/train_queue.sh, applied.

    python scripts/select_models.py [--dir cache/select]

Reads, per model (shipped registry key or candidate), NAME.dev.json (`evaluate --degrade
clean,noise:15db,mp3:32k,telephone` on MiniSpoof dev) and NAME.unseen.json (`evaluate`
on dev bona fide + S01 LPC-vocoded dev spoofs, core.training.vocode --selection), and prints

    score = ( mean EER over the four dev conditions  +  EER of S01 vs bona fide ) / 2

and, where every model has NAME.demo.json (`evaluate --matched` on DemoSpoof dev: modern
synthesis from pages no model trains on; round 4 on), the mean of that score and the
DemoSpoof dev matched EER, half and half. The candidate is chosen per architecture (lowest score; the shipped model keeps its
place unless a candidate is lower). Nothing here reads eval.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def scores(folder: Path) -> dict[str, dict]:
    out = {}
    for dev in sorted(folder.glob("*.dev.json")):
        name = dev.name.removesuffix(".dev.json")
        unseen = folder / f"{name}.unseen.json"
        if not unseen.exists():
            continue
        d, u = json.loads(dev.read_text()), json.loads(unseen.read_text())
        conditions = {c: v["overall"]["eer"] for c, v in d["conditions"].items()}
        s01 = u["per_system"]["S01"]["eer"]
        channel = float(np.mean(list(conditions.values())))
        out[name] = {"arch": d["arch"], "conditions": conditions, "channel": channel,
                     "s01": s01, "score": (channel + s01) / 2}  # fmt: skip
        demo = folder / f"{name}.demo.json"
        if demo.exists():
            out[name]["demo"] = json.loads(demo.read_text())["matched"]["matched"]
    if out and all("demo" in r for r in out.values()):
        for r in out.values():
            r["score"] = (r["score"] + r["demo"]) / 2
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default="cache/select")
    args = ap.parse_args()
    table = scores(Path(args.dir))
    if not table:
        print(f"no NAME.dev.json + NAME.unseen.json pairs in {args.dir}")
        return 1
    conds = list(next(iter(table.values()))["conditions"])
    print(f"{'model':<18} {'arch':<9} " + " ".join(f"{c:>10}" for c in conds)
          + f" {'channel':>8} {'S01':>6} {'demo':>6} {'score':>6}")  # fmt: skip
    for name, r in sorted(table.items(), key=lambda kv: (kv[1]["arch"], kv[1]["score"])):
        print(f"{name:<18} {r['arch']:<9} " + " ".join(f"{r['conditions'][c]:>10.2f}" for c in conds)
              + f" {r['channel']:>8.2f} {r['s01']:>6.2f} {r.get('demo', float('nan')):>6.2f}"
              + f" {r['score']:>6.2f}")  # fmt: skip
    print()
    for arch in sorted({r["arch"] for r in table.values()}):
        best = min((n for n in table if table[n]["arch"] == arch), key=lambda n: table[n]["score"])
        print(f"{arch}: lowest score {table[best]['score']:.2f} % -> {best}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
