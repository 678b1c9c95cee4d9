"""The seeded function fuzzer, bounded: ``cvat-ext functions serve`` (a real child process, real
HTTP on loopback) gets 150 malformed and 30 valid requests. bench/functions_fuzz.py runs 1,200."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("cv2")
pytest.importorskip("nuclio_sdk")

from tests.functions.function_fuzz import ServeProcess, generate, run_fuzz

pytestmark = [pytest.mark.models, pytest.mark.slow]


@pytest.fixture
def server() -> Iterator[ServeProcess]:
    srv = ServeProcess()
    srv.start()
    yield srv
    srv.stop()


def test_generation_is_seeded() -> None:
    a, b, c = generate(7, 40, 5), generate(7, 40, 5), generate(8, 40, 5)
    assert [x.raw for x in a] == [x.raw for x in b] != [x.raw for x in c]
    assert sum(x.valid for x in a) == 5 and len(a) == 45


def test_no_malformed_request_kills_or_breaks_the_server(server: ServeProcess) -> None:
    report = run_fuzz(generate(2026, 150, 30), server)
    assert report.problems == []
    assert (report.deaths, report.bad_5xx, report.unanswered) == (0, 0, 0)
    assert report.valid_ok == report.valid == 30
    # every kind of refusal was exercised, not only one
    assert {400, 404, 408, 411, 413}.issubset(report.statuses)
