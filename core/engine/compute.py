"""Where the Engine's model work runs: in this process (the default) or elsewhere.

The Engine decides what to compute and keeps the store (single flight, keys); a
compute backend only runs models. It is given to the Engine by a caller above it
(the dashboard builds core.corpus.serve.ServeCompute for a Ray cluster), so this layer
never imports the cluster code:

    class Compute(Protocol):
        def detector(self, key) -> Detector-like  # .spec, .score(audio, progress=,
                                                  #  max_windows=, work_after=),
                                                  #  .seconds_per_window
        explainers                                # like core.explain: explain(detector,
                                                  #  samples, ...), explain_params, EXPLAINERS

Progress reports, cancellation (core.detectors.scheduler.CancelToken, through the
progress callback) and the store's claims stay with the Engine, whichever backend runs
the models: a backend's failure is an exception like any other, so the claim is dropped
and nothing is stored.
"""

from __future__ import annotations

from typing import Any, Protocol


class ComputeUnavailable(RuntimeError):
    """The backend could not run this job (a cluster went away, a replica died);
    str() is one line that says what happened; trying again may work."""


class Compute(Protocol):
    explainers: Any  # an explanation registry whose explain() takes this backend's detectors

    def detector(self, key: str) -> Any: ...
