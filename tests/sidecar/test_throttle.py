"""The self rate limit on CVAT requests (token bucket), with a fake clock: nothing sleeps."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from typing import Any

import pytest

from cvat_ext.errors import ConfigError
from cvat_ext.sidecar.config import load_settings
from cvat_ext.sidecar.metrics import SidecarMetrics
from cvat_ext.sidecar.throttle import ThrottledClient, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.t = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += s


class Api:
    """Counts requests like CvatClient.calls: ``get`` makes one, ``pages`` one per page."""

    def __init__(self) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        self.url = "http://cvat"

    def get(self) -> int:
        self.calls["GET /api/jobs/{id}"] += 1
        return 1

    def cached(self) -> int:
        return 0

    def pages(self, n: int) -> Iterator[int]:
        for i in range(n):
            self.calls["GET /api/jobs"] += 1
            yield i


def test_bucket_allows_the_burst_then_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(10, 5, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        assert bucket.take() == 0.0
    assert bucket.take() == pytest.approx(0.1)
    assert bucket.take() == pytest.approx(0.1)
    clock.t += 10  # idle: refills to the burst, not beyond
    assert [bucket.take() for _ in range(6)][-1] == pytest.approx(0.1)
    assert bucket.waited_s == pytest.approx(0.3)


def test_unlimited_never_waits() -> None:
    clock = Clock()
    bucket = TokenBucket(0, 1, clock=clock, sleep=clock.sleep)
    assert all(bucket.take() == 0.0 for _ in range(1000)) and clock.slept == []


@pytest.mark.parametrize(("rate", "burst"), [(-1, 5), (10, 0)])
def test_bad_limits(rate: float, burst: int) -> None:
    with pytest.raises(ConfigError, match="rate limit"):
        TokenBucket(rate, burst, clock=Clock(), sleep=lambda s: None)


def test_throttled_client_holds_the_request_rate() -> None:
    clock, api, metrics = Clock(), Api(), SidecarMetrics()
    bucket = TokenBucket(5, 2, clock=clock, sleep=clock.sleep, on_wait=metrics.throttled_seconds.inc)
    client: Any = ThrottledClient(api, bucket)
    start = clock.t
    for _ in range(12):
        assert client.get() == 1
    assert list(client.pages(10)) == list(range(10))  # a lazy listing: one request per page
    for _ in range(50):
        client.cached()  # no request made: the token comes back
    requests = sum(api.calls.values())
    assert requests == 22
    # 22 requests at 5/s with 2 saved up front: (22 - 2) / 5 = 4 s, and no faster
    assert clock.t - start == pytest.approx(4.0)
    assert client.url == "http://cvat" and client.calls is api.calls
    assert "cvat_ext_sidecar_cvat_throttled_seconds_total 4.0" in metrics.render().decode()


def test_settings_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    base = {"cvat": {"url": "http://cvat:8080", "access_token": "t0ken"}}
    cfg = load_settings(None, overrides=base)
    assert (cfg.cvat.max_calls_per_s, cfg.cvat.burst) == (20.0, 40)
    monkeypatch.setenv("CVAT_EXT_CVAT__MAX_CALLS_PER_S", "2.5")
    monkeypatch.setenv("CVAT_EXT_CVAT__BURST", "3")
    cfg = load_settings(None, overrides=base)
    assert (cfg.cvat.max_calls_per_s, cfg.cvat.burst) == (2.5, 3)
