"""Verdict and explanation rows: get, get-or-compute (single flight), one analysis.

Keys come from core.engine.keys (VerdictKey, ExplanationKey) and nowhere else; this module
knows rows and dicts, core.engine.results turns them into Verdicts and Explanations.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
from sqlite_utils import Database

from core.store.blobs import audio_row, check_sha
from core.store.codecs import decode_arrays, dumps, dumps_lenient, encode_arrays
from core.store.flight import single_flight
from core.store.keys import ExplanationKey, VerdictKey
from core.store.schema import now, open_db, resolve_db_path


def prediction_row(row: dict) -> dict:
    row = dict(row)
    row["params"] = json.loads(row["params"])
    row["windows"] = json.loads(row["windows"])
    emb = row.get("embedding")
    row["embedding"] = json.loads(emb) if emb else None  # rows from before schema 4: None
    return row


def _lookup_prediction(key: str) -> Callable[[Database], dict | None]:
    def lookup(conn: Database) -> dict | None:
        rows = list(conn.query("SELECT * FROM predictions WHERE key = ?", [key]))
        return prediction_row(rows[0]) if rows else None

    return lookup


def get_prediction(vk: VerdictKey, *, db: str | Path | None = None) -> dict | None:
    """The stored verdict row for exactly this key, or None."""
    with open_db(db) as conn:
        return _lookup_prediction(vk.key)(conn)


def get_or_compute_prediction(
    vk: VerdictKey,
    compute: Callable[[], dict],
    *,
    db: str | Path | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> tuple[dict, bool]:
    """
    (row, cached). ``compute()`` returns a verdict dict (Verdict.to_json(): p_spoof,
    label, max_p_spoof, max_window, windows, seconds); it runs only on a miss, once.
    The row has those fields plus key, audio_sha256, model, weights_sha256, params,
    created.
    """
    check_sha(vk.audio_sha256)
    path = resolve_db_path(db)
    key = vk.key

    def save(conn: Database, v: dict) -> None:
        conn.table("predictions").upsert(
            {
                "key": key,
                "audio_sha256": vk.audio_sha256,
                "model": vk.model,
                "weights_sha256": vk.weights_sha256,
                "params": dumps(dict(vk.params)),
                "p_spoof": float(v["p_spoof"]),
                "label": str(v["label"]),
                "max_p_spoof": float(v["max_p_spoof"]),
                "max_window": int(v["max_window"]),
                "windows": dumps(v["windows"]),
                "seconds": float(v.get("seconds", 0.0)),
                "embedding": dumps(v["embedding"]) if v.get("embedding") else None,
                "created": now(),
            },
            pk="key",
        )

    return single_flight(
        path, "predictions", key, "prediction", _lookup_prediction(key), compute, save,
        on_wait=on_wait,
    )  # fmt: skip


# ------------------------------------------------------------------- explanations

_EXPLANATION_SUMMARY = (
    "key, audio_sha256, model, weights_sha256, method, method_version, params, window, "
    "target, target_label, quality, seconds, created, length(arrays) AS arrays_bytes"
)


def explanation_summary(row: dict) -> dict:
    row = dict(row)
    row["params"] = json.loads(row["params"])
    row["quality"] = json.loads(row["quality"]) if row.get("quality") else {}
    return row


def _lookup_explanation(key: str) -> Callable[[Database], tuple | None]:
    def lookup(conn: Database) -> tuple | None:
        rows = list(
            conn.query("SELECT meta, arrays FROM explanations WHERE key = ?", [key])
        )
        if not rows:
            return None
        return json.loads(rows[0]["meta"]), decode_arrays(rows[0]["arrays"])

    return lookup


def get_explanation(
    ek: ExplanationKey, *, db: str | Path | None = None
) -> tuple[dict, dict] | None:
    """(meta, arrays) of one stored explanation by its key; None when absent."""
    with open_db(db) as conn:
        return _lookup_explanation(ek.key)(conn)


def get_or_compute_explanation(
    ek: ExplanationKey,
    compute: Callable[[], tuple[dict, dict[str, np.ndarray]]],
    *,
    db: str | Path | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> tuple[dict, dict[str, np.ndarray], bool]:
    """
    (meta, arrays, cached). ``compute()`` returns Explanation.to_record(): a JSON-able
    meta dict (window, target, target_label, quality, seconds are indexed from it) and
    a dict of numeric arrays.
    """
    check_sha(ek.audio_sha256)
    path = resolve_db_path(db)
    key = ek.key

    def save(conn: Database, record: tuple[dict, dict]) -> None:
        meta, arrays = record
        window, target = meta.get("window"), meta.get("target")
        conn.table("explanations").upsert(
            {
                "key": key,
                "audio_sha256": ek.audio_sha256,
                "model": ek.model,
                "weights_sha256": ek.weights_sha256,
                "method": ek.method,
                "method_version": str(ek.method_version),
                "params": dumps(dict(ek.params)),
                "window": int(window) if window is not None else None,
                "target": int(target) if target is not None else None,
                "target_label": meta.get("target_label"),
                "meta": dumps_lenient(meta),
                "arrays": encode_arrays(arrays),
                "quality": dumps_lenient(meta.get("quality") or {}),
                "seconds": float(meta.get("seconds") or 0.0),
                "created": now(),
            },
            pk="key",
        )

    (meta, arrays), cached = single_flight(
        path, "explanations", key, "explanation", _lookup_explanation(key), compute,
        save, on_wait=on_wait,
    )  # fmt: skip
    return meta, arrays, cached


# ------------------------------------------------------------------------ reading


def get_analysis(
    sha256: str, *, db: str | Path | None = None, arrays: bool = False
) -> dict | None:
    """
    One analysis: {"audio": audio row, "predictions": [rows, newest first],
    "explanations": [summaries]}; None for an unknown hash. With ``arrays=True`` each
    explanation also carries "meta" and "arrays" (decoded), in the same read.
    """
    check_sha(sha256)
    with open_db(db) as conn:
        audio = audio_row(conn, sha256)
        if audio is None:
            return None
        preds = [
            prediction_row(r)
            for r in conn.query(
                "SELECT * FROM predictions WHERE audio_sha256 = ? "
                "ORDER BY model, created DESC",
                [sha256],
            )
        ]
        cols = _EXPLANATION_SUMMARY + (", meta, arrays" if arrays else "")
        expls = []
        for r in conn.query(
            f"SELECT {cols} FROM explanations WHERE audio_sha256 = ? "
            "ORDER BY model, method, window, created",
            [sha256],
        ):
            s = explanation_summary(r)
            if arrays:
                s["meta"] = json.loads(s["meta"])
                s["arrays"] = decode_arrays(s["arrays"])
            expls.append(s)
    return {"audio": audio, "predictions": preds, "explanations": expls}

