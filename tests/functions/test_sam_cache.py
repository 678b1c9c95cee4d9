"""Embedding cache of the SAM functions: byte-bounded LRU, two levels, a real redis-server."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cvat_ext.errors import ConfigError
from cvat_ext.functions.embedding_cache import (
    CacheSource,
    EmbeddingCache,
    LruCache,
    RedisStore,
)


class DictStore:
    """A SharedStore fake: a dict plus a log of calls."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.calls: list[tuple[str, str]] = []

    def get(self, key: str) -> bytes | None:
        self.calls.append(("get", key))
        return self.data.get(key)

    def set(self, key: str, value: bytes) -> None:
        self.calls.append(("set", key))
        self.data[key] = value


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A throwaway redis-server on a free port in a temp dir; ready when it says so on stdout."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not on PATH (CI installs it)")
    port = _free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen([*args, "--dir", str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # blocks until the server logs readiness or exits
            if "Ready to accept connections" in line:
                break
        else:
            pytest.fail(f"redis-server exited with {proc.wait()}")
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_lru_evicts_least_recently_used_by_bytes() -> None:
    lru: LruCache[bytes] = LruCache(10, len)
    lru.put("a", b"1234")
    lru.put("b", b"1234")
    assert lru.get("a") == b"1234"  # a is now the most recent
    lru.put("c", b"1234")  # 12 bytes > 10: evict b
    assert "b" not in lru and "a" in lru and "c" in lru
    assert lru.nbytes == 8


def test_lru_skips_values_larger_than_budget_and_replaces_same_key() -> None:
    lru: LruCache[bytes] = LruCache(4, len)
    lru.put("big", b"12345")
    assert len(lru) == 0
    lru.put("k", b"12")
    lru.put("k", b"123")
    assert lru.get("k") == b"123" and lru.nbytes == 3
    with pytest.raises(ConfigError):
        LruCache(-1, len)


def test_two_levels_local_then_shared_then_compute() -> None:
    store = DictStore()
    computed: list[str] = []

    def compute() -> tuple[str, bytes]:
        computed.append("x")
        return "value", b"\x01\x02\x03\x04"

    first: EmbeddingCache[str] = EmbeddingCache(LruCache(100, len), model_key="m", shared=store, raw_nbytes=4)
    assert first.get_or_compute("abc", compute, bytes.hex) == ("value", CacheSource.COMPUTED)
    assert store.data == {"cvat-ext:sam-embedding:m:abc": b"\x01\x02\x03\x04"}
    assert first.get_or_compute("abc", compute, bytes.hex) == ("value", CacheSource.LOCAL)
    # another worker: empty LRU, same shared store -> rebuilt from the raw bytes, not computed
    second: EmbeddingCache[str] = EmbeddingCache(LruCache(100, len), model_key="m", shared=store, raw_nbytes=4)
    assert second.get_or_compute("abc", compute, bytes.hex) == ("01020304", CacheSource.SHARED)
    assert second.get_or_compute("abc", compute, bytes.hex) == ("01020304", CacheSource.LOCAL)
    assert computed == ["x"]
    # other weights never see these embeddings
    other: EmbeddingCache[str] = EmbeddingCache(LruCache(100, len), model_key="n", shared=store, raw_nbytes=4)
    assert other.get_or_compute("abc", compute, bytes.hex)[1] is CacheSource.COMPUTED


def test_shared_value_of_wrong_size_is_recomputed(caplog: pytest.LogCaptureFixture) -> None:
    store = DictStore()
    store.data["cvat-ext:sam-embedding:m:abc"] = b"\x00" * 3
    cache: EmbeddingCache[str] = EmbeddingCache(LruCache(100, len), model_key="m", shared=store, raw_nbytes=4)
    with caplog.at_level(logging.WARNING):
        value, source = cache.get_or_compute("abc", lambda: ("v", b"\x00" * 4), bytes.hex)
    assert (value, source) == ("v", CacheSource.COMPUTED)
    assert "ignoring shared value" in caplog.text
    assert store.data["cvat-ext:sam-embedding:m:abc"] == b"\x00" * 4


@pytest.mark.redis
def test_redis_store_roundtrip_with_ttl(redis_server: tuple[str, int]) -> None:
    host, port = redis_server
    store = RedisStore.from_env({"CVAT_FUNCTIONS_REDIS_HOST": host, "CVAT_FUNCTIONS_REDIS_PORT": str(port)})
    assert store is not None
    raw = bytes(range(256)) * 16
    store.set("k", raw)
    assert store.get("k") == raw
    assert store.get("missing") is None
    assert 0 < store.client.ttl("k") <= 86_400
    assert store.errors == 0


@pytest.mark.redis
def test_two_workers_share_embeddings_through_redis(redis_server: tuple[str, int]) -> None:
    host, port = redis_server
    env = {"CVAT_FUNCTIONS_REDIS_HOST": host, "CVAT_FUNCTIONS_REDIS_PORT": str(port)}
    caches = [
        EmbeddingCache[str](LruCache(1 << 20, len), model_key="vit_h-x", shared=RedisStore.from_env(env), raw_nbytes=8)
        for _ in range(2)
    ]
    raw = b"\x00\x00\x80?\x00\x00\x00@"  # float32 1.0, 2.0
    assert caches[0].get_or_compute("d1", lambda: ("body", raw), bytes.hex)[1] is CacheSource.COMPUTED
    value, source = caches[1].get_or_compute("d1", lambda: pytest.fail("computed twice"), bytes.hex)
    assert (value, source) == (raw.hex(), CacheSource.SHARED)


def test_dead_redis_is_a_miss_then_skipped_until_retry(caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("redis")
    clock = Clock()
    env = {"CVAT_FUNCTIONS_REDIS_HOST": "127.0.0.1", "CVAT_FUNCTIONS_REDIS_PORT": str(_free_port())}
    built = RedisStore.from_env(env)
    assert built is not None
    store = RedisStore(built.client, retry_after_s=30.0, clock=clock)
    with caplog.at_level(logging.WARNING):
        assert store.get("k") is None
    assert store.errors == 1 and "redis GET failed" in caplog.text
    # within the back-off window the store is not even asked
    assert store.get("k") is None
    store.set("k", b"v")
    assert store.errors == 1
    clock.now += 31.0
    assert store.get("k") is None
    assert store.errors == 2


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"CVAT_FUNCTIONS_REDIS_HOST": " "}, None),
        ({"CVAT_FUNCTIONS_REDIS_HOST": "kv", "CVAT_FUNCTIONS_REDIS_PORT": "6666"}, ("kv", 6666, None)),
        (
            {"CVAT_FUNCTIONS_REDIS_HOST": "kv", "CVAT_FUNCTIONS_REDIS_PASSWORD": "pw"},
            ("kv", 6379, "pw"),
        ),
        ({"CVAT_FUNCTIONS_REDIS_HOST": "kv", "CVAT_FUNCTIONS_REDIS_PORT": "x"}, ConfigError),
    ],
)
def test_redis_store_from_env(env: dict[str, str], expected: object) -> None:
    pytest.importorskip("redis")
    if isinstance(expected, type):
        with pytest.raises(expected):
            RedisStore.from_env(env)
        return
    store = RedisStore.from_env(env)
    if expected is None:
        assert store is None
        return
    assert store is not None
    kwargs = store.client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs.get("password")) == expected
