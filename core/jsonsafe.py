"""JSON safety for results: NaN/inf become None, numpy scalars and arrays plain Python."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def finite(obj: Any) -> Any:
    """A copy of ``obj`` that json.dumps writes as strict JSON."""
    if isinstance(obj, dict):
        return {str(k): finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [finite(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj
