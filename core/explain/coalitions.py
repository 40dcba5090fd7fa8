"""The per-window table of coalition values (see core.explain.window, "Coalitions are
evaluated once"): kept on the detector object, a small LRU keyed by the window's input,
reference inputs and features."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np

TABLE_CACHE_SIZE = 64  # windows whose coalition values a process keeps

_TABLES_LOCK = threading.Lock()


def coalition_codes(keep: np.ndarray) -> list[bytes]:
    """the table keys of coalitions: each row of keep (n, F) bool as packed bits"""
    return [row.tobytes() for row in np.packbits(keep, axis=1)]


def coalition_table(detector, index: int, x, baseline, mask) -> dict:
    """
    The table of coalition values for this window, new and empty if none: kept on the
    detector object (so a reloaded or different net never sees another's values), a
    small LRU keyed by the window's input, reference inputs and features.
    """
    digest = hashlib.sha256()
    for t in (x, baseline, mask):
        digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    key = (int(index), digest.hexdigest())
    with _TABLES_LOCK:
        tables = detector.__dict__.setdefault("_coalition_tables", OrderedDict())
        table = tables.get(key)
        if table is None:
            table = tables[key] = {}
        tables.move_to_end(key)
        while len(tables) > TABLE_CACHE_SIZE:
            tables.popitem(last=False)
    return table


def clear_coalition_tables(detector) -> None:
    """forget a detector's cached coalition values (tests; weights changed in place)"""
    with _TABLES_LOCK:
        detector.__dict__.pop("_coalition_tables", None)
