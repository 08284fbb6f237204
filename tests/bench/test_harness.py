"""The bench harness's own logic: the open-loop schedule and driver, the soak's memory trend.

The drivers run against fake in-process senders (an asyncio sleep per message), so these
tests take about a second and need no gateway.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest

from bench.harness import ab, load
from bench.harness.procs import slope
from bench.soak import sample_figures


def fake_opener(service_s: float):
    """Connections that answer every message AA after ``service_s``."""

    async def open_(host: str, port: int):
        async def send(message: bytes) -> tuple[bool, str]:
            await asyncio.sleep(service_s)
            return True, "AA"

        async def close() -> None:
            pass

        return send, close

    return open_


def messages():
    return (b"MSH|%d" % n for n in itertools.count())


def test_schedule_is_evenly_spaced_and_does_not_drift():
    assert list(itertools.islice(load.schedule(10.0, 4.0), 3)) == [10.0, 10.25, 10.5]
    ten_minutes_at_20 = next(itertools.islice(load.schedule(0.0, 20.0), 12_000, None))
    assert ten_minutes_at_20 == 600.0


def test_slope_is_the_least_squares_fit():
    assert slope([(0, 1.0), (1, 3.0), (2, 5.0)]) == pytest.approx(2.0)
    assert slope([(0, 10.0), (1, 12.0), (2, 10.0), (3, 12.0)]) == pytest.approx(0.4)
    assert slope([(0, 1.0)]) is None
    assert slope([(1, 1.0), (1, 2.0)]) is None


def test_sample_figures_report_trends_per_minute_and_per_process():
    samples = [
        {"s": s, "rss MB": 300 + s / 30, "backlog": b, "rss MB by pid": by_pid}
        for s, b, by_pid in [
            (0, 0, {"1": 200, "2": 100}),
            (60, 5, {"1": 202, "2": 100}),
            (120, 1, {"1": 204}),  # 2 ended
        ]
    ]
    figures = sample_figures(samples)
    assert figures["RSS start MB"] == 300
    assert figures["RSS end MB"] == 304
    assert figures["RSS MB/min"] == 2.0
    assert figures["RSS max MB"] == 304
    assert (figures["backlog"], figures["backlog max"], figures["backlog/min"]) == (1, 5, 0.5)
    assert figures["RSS MB/min by pid"] == {"1": 2.0, "2": 0.0}


def test_pace_keeps_the_rate_when_connections_suffice():
    run = asyncio.run(
        load.pace(fake_opener(0.01), [("h", 1)], messages(), 4, 0.5, rate=40, warmup_s=0.1)
    )
    assert run.scheduled == run.count == 20
    assert run.late == 0
    assert run.figures()["msg/s"] == pytest.approx(40, rel=0.25)
    assert max(run.latencies_s) < 0.1


def test_pace_counts_queueing_from_the_scheduled_time():
    """One connection answering in 50 ms cannot keep 40/s: sends queue, and their latency
    grows by the wait although each exchange itself takes 50 ms."""
    run = asyncio.run(
        load.pace(fake_opener(0.05), [("h", 1)], messages(), 1, 0.5, rate=40, warmup_s=0)
    )
    assert run.count == 20
    assert run.late >= 15
    assert max(run.latencies_s) > 0.4  # the 20th waited for 19 before it
    assert run.figures()["msg/s"] < 25  # achieved, not scheduled


def test_drive_counts_only_the_window_after_priming():
    marks = []
    run = asyncio.run(
        load.drive(
            fake_opener(0.01), [("h", 1)], messages(), 2, 0.3, warmup_s=0.05, on_window=marks.append
        )
    )
    assert marks == ["start", "end"]
    assert 20 <= run.count <= 62
    assert run.refused == 0


def test_sustained_steps_and_what_makes_a_step_fail():
    from bench.sustained import P99_LIMIT_MS, rates, why_not

    assert list(rates(20, 1.25, 4)) == [20.0, 25.0, 31.2, 39.1]
    held = {"refused": 0, "late": 0, "p99 ms": 80.0}
    assert why_not(held, backlog=10, rate=40.0) is None
    assert "refused" in why_not({**held, "refused": 2}, 0, 40.0)
    assert "free connection" in why_not({**held, "late": 1}, 0, 40.0)
    assert "p99" in why_not({**held, "p99 ms": P99_LIMIT_MS + 1}, 0, 40.0)
    assert "filing behind" in why_not(held, backlog=41, rate=40.0)
    assert "tracking" in why_not(held, backlog=0, rate=40.0, tracking_dropped=3)


def test_ab_arms_name_a_tree_or_revision_and_their_environment():
    assert ab.parse_arm(".") == ab.Arm(".", None, {})
    assert ab.parse_arm("HEAD~2+GATEWAY_PIPELINE_WORKERS=1,X=a=b") == ab.Arm(
        "HEAD~2+GATEWAY_PIPELINE_WORKERS=1,X=a=b",
        "HEAD~2",
        {"GATEWAY_PIPELINE_WORKERS": "1", "X": "a=b"},
    )
    for bad in ("+X=1", ".+X", ".+=1"):
        with pytest.raises(ValueError):
            ab.parse_arm(bad)


def test_ab_ratios_pair_rounds_by_index():
    a = [{"gateway ms/msg": 10.0, "p99 ms": 40.0}, {"gateway ms/msg": 20.0, "p99 ms": ""}]
    b = [{"gateway ms/msg": 9.0, "p99 ms": 20.0}, {"gateway ms/msg": 19.0, "p99 ms": 30.0}]
    figures = ab.ratios(a, b)
    assert figures["gateway ms/msg"] == {"B/A mean": 0.925, "min": 0.9, "max": 0.95}
    assert figures["p99 ms"] == {"B/A mean": 0.5, "min": 0.5, "max": 0.5}  # the round without A
    assert "postgres ms/msg" not in figures


def test_ab_cpu_spent_counts_processes_that_appeared_whole():
    assert ab._spent({1: 2.0, 2: 1.0}, {1: 2.5, 2: 1.0, 3: 0.25}) == pytest.approx(0.75)
