"""The sidecar's bounded cache: values expire after their age limit, the least recently used go
beyond the size limit, and an expired entry is dropped even if it is never asked for again."""

from __future__ import annotations

import pytest

from cvat_ext.sidecar.expiring import ExpiringCache
from tests.sidecar.crash import Clock


def test_a_value_is_served_until_it_is_ttl_old() -> None:
    clock = Clock()
    cache: ExpiringCache[int, str] = ExpiringCache(ttl_s=60, clock=clock, max_entries=8)
    assert cache.get(1) is None
    assert cache.put(1, "labels") == "labels"
    clock.t += 59
    assert cache.get(1) == "labels"  # a read does not restamp it
    clock.t += 1
    assert cache.get(1) is None


def test_expired_entries_go_when_a_value_is_stored() -> None:
    clock = Clock()
    cache: ExpiringCache[int, int] = ExpiringCache(ttl_s=60, clock=clock, max_entries=100)
    for task_id in range(10):
        cache.put(task_id, task_id)
    clock.t += 61
    cache.put(99, 99)
    assert len(cache) == 1


def test_the_least_recently_used_go_beyond_the_size_limit() -> None:
    clock = Clock()
    cache: ExpiringCache[int, int] = ExpiringCache(ttl_s=None, clock=clock, max_entries=3)
    for job_id in (1, 2, 3):
        cache.put(job_id, job_id * 10)
    assert cache.get(1) == 10  # used: 2 is now the oldest
    cache.put(4, 40)
    assert [cache.get(k) for k in (1, 2, 3, 4)] == [10, None, 30, 40]
    clock.t += 10**9
    assert cache.get(4) == 40  # no age limit


def test_a_size_limit_under_one_is_refused() -> None:
    with pytest.raises(ValueError, match="max_entries must be at least 1, got 0"):
        ExpiringCache(ttl_s=None, clock=Clock(), max_entries=0)
