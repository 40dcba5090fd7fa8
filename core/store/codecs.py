"""How values are written into the store: canonical JSON and numeric array blobs.

Arrays are ``np.savez_compressed`` bytes read back with ``allow_pickle=False``; object
arrays are refused, so nothing in the store ever needs pickle.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

from core.store.keys import canonical_json, json_default

dumps = canonical_json  # sorted keys, no spaces; NaN/inf refused (not valid JSON)


def dumps_lenient(obj: Any) -> str:
    """As dumps, but NaN/inf kept (metrics such as R² can be NaN; json.loads reads them)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=json_default)


def encode_arrays(arrays: dict[str, np.ndarray]) -> bytes:
    """np.savez_compressed bytes; object arrays are refused (they would need pickle)."""
    clean = {}
    for name, a in arrays.items():
        a = np.asarray(a)
        if a.dtype.hasobject:
            raise ValueError(
                f"array {name!r} has dtype object; only numeric arrays are stored"
            )
        clean[name] = a
    buf = io.BytesIO()
    np.savez_compressed(buf, **clean)
    return buf.getvalue()


def decode_arrays(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


# ------------------------------------------------------------------------ audio

