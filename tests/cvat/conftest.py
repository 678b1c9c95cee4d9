from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import pytest

from cvat_ext.cvat import CvatClient, RetryPolicy
from tests.cvat.stub import FakeTime, StubCvat


@pytest.fixture
def stub() -> Iterator[StubCvat]:
    with StubCvat() as server:
        yield server


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def make_client(fake_time: FakeTime) -> Iterator[Callable[..., CvatClient]]:
    """Build clients with injected time (no real sleeps) and a fixed rng; closed after the test."""
    made: list[CvatClient] = []

    def make(url: str, **kwargs: object) -> CvatClient:
        kwargs.setdefault("access_token", "tok-123")
        kwargs.setdefault("retry", RetryPolicy(max_attempts=5, base_delay_s=0.5, max_delay_s=30.0, budget_s=120.0))
        client = CvatClient(
            url, sleep=fake_time.sleep, clock=fake_time.clock, rng=random.Random(0), timeout_s=5.0, **kwargs
        )  # type: ignore[arg-type]
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
