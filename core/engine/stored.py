"""The Engine's read side: history with combined verdicts, stored audio, batches, deletion.

A mixin of core.engine.service.Engine (it uses the engine's ``db_path`` and
``calibration_pair()``); nothing here runs a model.
"""

from __future__ import annotations

from core import store
from core.audio.decode import Audio, load_audio
from core.audio.quality import InputQuality
from core.detectors.detect import Verdict
from core.judgement.assessment import load_familiarity
from core.judgement.combined import BANDS, combine


class StoredViews:
    def history(self, *, band: str | None = None, **filters) -> store.HistoryPage:
        """
        store.list_history's page, each item with its ``combined`` verdict (JSON, from
        the stored scores and signal quality). ``band``: only items in that band
        (core.judgement.combined.BANDS); filtered before paging, so totals stay right.
        """
        if band is not None and band not in BANDS:
            raise ValueError(f"band must be one of {', '.join(BANDS)}")
        calibration = self.calibration_pair()  # once per page, not per item
        if band is None:
            page = store.list_history(db=self.db_path, **filters)
            for item in page.items:
                item["combined"] = self._item_combined(item, calibration).to_json()
            return page
        limit, offset = max(0, int(filters.pop("limit", 50))), max(0, int(filters.pop("offset", 0)))
        every = store.list_history(db=self.db_path, limit=1 << 62, offset=0, **filters)
        kept = []
        for item in every.items:
            c = self._item_combined(item, calibration)
            if c.band == band:
                kept.append({**item, "combined": c.to_json()})
        return store.HistoryPage(kept[offset : offset + limit], len(kept), limit, offset)

    def _item_combined(self, item: dict, calibration):
        verdicts = {
            k: Verdict(k, p["weights_sha256"], p["p_spoof"], p["label"], p["max_p_spoof"], 0,
                       embedding=tuple(p["embedding"]) if p.get("embedding") else None)
            for k, p in item.get("predictions", {}).items()
        }
        signal = InputQuality.from_json(item["quality"]) if item.get("quality") else None
        cal, problem = calibration
        fam, _ = load_familiarity(cal)
        return combine(verdicts, signal, cal, calibration_problem=problem, familiarity=fam)

    def delete(self, sha256: str) -> bool:
        return store.delete_analysis(sha256, db=self.db_path)

    def audio_bytes(self, sha256: str) -> bytes | None:
        try:
            return store.audio_bytes(sha256, db=self.db_path)
        except store.NotStoredError:
            return None

    def audio(self, sha256: str) -> Audio | None:
        data = self.audio_bytes(sha256)
        return None if data is None else load_audio(data)

    def find_sha256(self, prefix: str) -> str:
        return store.find_sha256(prefix, db=self.db_path)

    def batches(self) -> list[dict]:
        return store.list_batches(db=self.db_path)

    def batch(self, name: str) -> dict | None:
        return store.get_batch(name, db=self.db_path)

    def batch_files(self, name: str) -> list[dict]:
        return store.batch_files(name, db=self.db_path)
