"""The load benchmark's analyst loop (benchmarks/load.py): action mix, errors, pauses."""

import asyncio
import random
import time

from benchmarks.load import MIX, analyst, percentile, report_timeline


def run_analyst(seconds: float, think: float, act) -> list:
    results: list = []
    stop_at = time.monotonic() + seconds
    asyncio.run(analyst(stop_at, random.Random(0), results, act, think))
    return results


def test_back_to_back_actions_draw_every_kind_and_count_errors():
    async def act(kind: str, n: int):
        await asyncio.sleep(0)
        if n % 7 == 3:
            raise RuntimeError("no verdicts")
        return 0.01, 0.02

    results = run_analyst(0.3, 0.0, act)
    kinds = {k for k, *_ in results}
    assert kinds <= {k for k, _ in MIX} and "repeat view" in kinds
    errors = [r for r in results if r[3] is not None]
    assert errors and all("RuntimeError: no verdicts" in r[3] for r in errors)
    assert len(errors) == sum(1 for n in range(len(results)) if n % 7 == 3)
    ok = [r for r in results if r[3] is None]
    assert all(r[1:3] == (0.01, 0.02) for r in ok)


def test_think_time_pauses_between_actions_and_ends_at_the_deadline():
    async def act(kind: str, n: int):
        return 0.0, None

    t0 = time.monotonic()
    paused = run_analyst(0.5, 0.1, act)
    took = time.monotonic() - t0
    back_to_back = run_analyst(0.5, 0.0, lambda k, n: asyncio.sleep(0, (0.0, None)))
    # a mean pause of 0.1 s leaves room for about 5 actions in 0.5 s; none pauses past the end
    assert 1 <= len(paused) <= 20 < len(back_to_back)
    assert took < 0.5 + 0.2


def test_percentile_of_nothing_is_nan():
    assert percentile([], 95) != percentile([], 95)
    assert percentile([1.0, 2.0, 3.0], 50) == 2.0


def test_each_action_records_its_start_and_the_timeline_lists_uploads_in_order(capsys):
    async def act(kind: str, n: int):
        await asyncio.sleep(0.01)
        return 0.5 + n, None

    t0 = time.monotonic()
    results = run_analyst(0.2, 0.0, act)
    starts = [r[4] for r in results]
    assert starts == sorted(starts) and t0 <= starts[0] < t0 + 0.05
    report_timeline(results, kind="repeat view")
    line = capsys.readouterr().out.strip()
    views = [r for r in results if r[0] == "repeat view"]
    listed = ", ".join(f"{r[4] - starts[0]:.0f}: {r[1]:.1f}" for r in views)
    assert views and line == f"repeat view, by start (s after the load began): {listed}"
    report_timeline([], kind="repeat view")  # nothing to show: prints nothing
    assert capsys.readouterr().out == ""
