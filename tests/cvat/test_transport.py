"""Retries, error translation, auth and org headers: the real cvat-sdk over real HTTP to a stub."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from cvat_ext.cvat import CvatClient, RetryPolicy
from cvat_ext.errors import (
    CvatAuthError,
    CvatBadRequestError,
    CvatConnectionError,
    CvatHttpError,
    CvatNotFoundError,
    CvatPermissionError,
    CvatRateLimitedError,
    CvatServerError,
)
from tests.cvat.recorded import response_bodies
from tests.cvat.stub import FakeTime, Reply, StubCvat, free_port_url

MakeClient = Callable[..., CvatClient]


def _job_body() -> dict[str, object]:
    return response_bodies("33_job_get.json", "GET", "/api/jobs/")[0]


def test_503_then_success_is_retried_with_recorded_sleep(stub: StubCvat, make_client: MakeClient, fake_time: FakeTime):
    body = _job_body()
    stub.on("GET", f"/api/jobs/{body['id']}", Reply(503, {"detail": "busy"}), Reply(503), Reply(200, body))
    client = make_client(stub.url)
    job = client.get_job(int(body["id"]))  # type: ignore[call-overload]
    assert job.id == body["id"]
    assert client.calls["GET /api/jobs/{id}"] == 3
    assert len(fake_time.sleeps) == 2
    # exponential backoff with jitter in [d * (1 - jitter), d]
    assert 0.25 <= fake_time.sleeps[0] <= 0.5
    assert 0.5 <= fake_time.sleeps[1] <= 1.0


@pytest.mark.parametrize("retry_after, expected_s", [("7", 7.0), ("0", 0.0), ("2.5", 2.5)])
def test_429_honours_retry_after_seconds(
    stub: StubCvat, make_client: MakeClient, fake_time: FakeTime, retry_after: str, expected_s: float
):
    body = _job_body()
    stub.on("GET", "/api/jobs/5", Reply(429, {"detail": "throttled"}, {"Retry-After": retry_after}), Reply(200, body))
    client = make_client(stub.url)
    client.get_job(5)
    assert fake_time.sleeps == [expected_s]


def test_429_honours_retry_after_http_date(stub: StubCvat, make_client: MakeClient, fake_time: FakeTime):
    when = datetime.now(UTC) + timedelta(seconds=20)
    stub.on(
        "GET",
        "/api/jobs/5",
        Reply(429, headers={"Retry-After": format_datetime(when, usegmt=True)}),
        Reply(200, _job_body()),
    )
    make_client(stub.url).get_job(5)
    assert len(fake_time.sleeps) == 1 and 15.0 <= fake_time.sleeps[0] <= 20.0


def test_429_is_retried_for_post_too(stub: StubCvat, make_client: MakeClient, fake_time: FakeTime):
    issue = response_bodies("60_issue_create.json", "POST", "/api/issues")[0]
    stub.on("POST", "/api/issues", Reply(429, headers={"Retry-After": "1"}), Reply(201, issue))
    client = make_client(stub.url)
    got = client.create_issue(134, 3, [320.0, 240.0], "QA: point")
    assert got.id == issue["id"] and fake_time.sleeps == [1.0]
    assert client.calls["POST /api/issues"] == 2


def test_connection_reset_on_get_is_retried(stub: StubCvat, make_client: MakeClient, fake_time: FakeTime):
    stub.on("GET", "/api/jobs/5", Reply(action="reset"), Reply(action="close"), Reply(200, _job_body()))
    client = make_client(stub.url)
    assert client.get_job(5).id == _job_body()["id"]
    assert len(fake_time.sleeps) == 2
    assert client.calls["GET /api/jobs/{id}"] == 3


def test_connection_reset_on_patch_is_not_retried(stub: StubCvat, make_client: MakeClient, fake_time: FakeTime):
    stub.on("PATCH", "/api/jobs/5", Reply(action="reset"))
    client = make_client(stub.url)
    with pytest.raises(CvatConnectionError, match=r"job 5: PATCH /api/jobs/5"):
        client.update_job(5, state="completed")
    assert fake_time.sleeps == []
    assert len(stub.requests("PATCH")) == 1


def test_post_not_retried_after_502(stub: StubCvat, make_client: MakeClient, fake_time: FakeTime):
    stub.on("POST", "/api/issues", Reply(502, {"detail": "bad gateway"}))
    client = make_client(stub.url)
    with pytest.raises(CvatServerError) as info:
        client.create_issue(812, 14, [1, 2, 3, 4], "QA")
    assert info.value.status == 502
    assert "job 812 frame 14" in str(info.value) and "POST /api/issues -> 502 Bad Gateway" in str(info.value)
    assert str(info.value).endswith("not retried: the POST may have reached CVAT, check before repeating it")
    assert len(stub.requests("POST", "/api/issues")) == 1
    assert fake_time.sleeps == []


def test_budget_exhausted_gives_clear_http_error(stub: StubCvat, make_client: MakeClient, fake_time: FakeTime):
    stub.on("GET", "/api/jobs/812", Reply(503, {"detail": "maintenance"}))
    client = make_client(stub.url, retry=RetryPolicy(max_attempts=10, base_delay_s=1.0, max_delay_s=8.0, budget_s=5.0))
    with pytest.raises(CvatServerError) as info:
        client.get_job(812)
    message = str(info.value)
    assert message.startswith("job 812: GET /api/jobs/812 -> 503 Service Unavailable: maintenance")
    assert "retry budget" in message
    assert sum(fake_time.sleeps) <= 5.0
    assert client.calls["GET /api/jobs/{id}"] == len(fake_time.sleeps) + 1 < 10


def test_unreachable_after_all_attempts(make_client: MakeClient, fake_time: FakeTime):
    url = free_port_url()
    client = make_client(url)
    with pytest.raises(CvatConnectionError) as info:
        client.get_job(812)
    message = str(info.value)
    assert message.startswith(f"CVAT at {url} unreachable after 5 attempts over ")
    assert "job 812: GET /api/jobs/812" in message
    assert len(fake_time.sleeps) == 4
    assert client.calls["GET /api/jobs/{id}"] == 5


def test_refused_post_is_retried(make_client: MakeClient, fake_time: FakeTime):
    client = make_client(free_port_url(), retry=RetryPolicy(max_attempts=3))
    with pytest.raises(CvatConnectionError, match="after 3 attempts"):
        client.add_comment(7, "hello")
    assert client.calls["POST /api/comments"] == 3


@pytest.mark.parametrize(
    "status, body, exc_type, text",
    [
        (
            404,
            {"detail": "No Job matches the given query."},
            CvatNotFoundError,
            "job 812: GET /api/jobs/812 -> 404 Not Found: No Job matches the given query.",
        ),
        (
            403,
            {"detail": "You do not have permission to perform this action."},
            CvatPermissionError,
            "job 812: GET /api/jobs/812 -> 403 Forbidden: You do not have permission",
        ),
        (
            401,
            {"detail": "Invalid token."},
            CvatAuthError,
            "job 812: GET /api/jobs/812 -> 401 Unauthorized: Invalid token.",
        ),
        (
            400,
            ["Quality reports require a Ground Truth job"],
            CvatBadRequestError,
            "-> 400 Bad Request: Quality reports",
        ),
        (418, "teapot", CvatHttpError, "-> 418 I'm a Teapot"),
    ],
)
def test_error_status_maps_to_exception(
    stub: StubCvat, make_client: MakeClient, fake_time: FakeTime, status, body, exc_type, text
):
    stub.on("GET", "/api/jobs/812", Reply(status, body))
    client = make_client(stub.url)
    with pytest.raises(exc_type) as info:
        client.get_job(812)
    assert text in str(info.value)
    assert info.value.status == status and info.value.method == "GET" and info.value.path == "/api/jobs/812"
    assert fake_time.sleeps == []  # 4xx is final


def test_rate_limited_error_carries_retry_after(stub: StubCvat, make_client: MakeClient):
    stub.on("GET", "/api/jobs/1", Reply(429, {"detail": "slow down"}, {"Retry-After": "500"}))
    client = make_client(stub.url)
    with pytest.raises(CvatRateLimitedError) as info:
        client.get_job(1)
    assert info.value.retry_after_s == 500.0 and "retry budget" in str(info.value)


def test_recorded_401_and_404_bodies(stub: StubCvat, make_client: MakeClient):
    from tests.cvat.recorded import load

    for name, exc_type in (
        ("E01_unauthenticated_401.json", CvatAuthError),
        ("E03_not_found_404.json", CvatNotFoundError),
    ):
        exchange = load(name)["exchanges"][0]
        stub.on("GET", exchange["request"]["path"], Reply(exchange["response"]["status"], exchange["response"]["body"]))
        job_id = int(exchange["request"]["path"].rsplit("/", 1)[1])
        with pytest.raises(exc_type, match=f"job {job_id}: GET /api/jobs/{job_id} -> "):
            make_client(stub.url).get_job(job_id)


def test_bearer_token_and_org_header_on_every_call(stub: StubCvat, make_client: MakeClient):
    stub.on("GET", "/api/jobs/5", Reply(200, _job_body()))
    stub.on("GET", "/api/users/self", Reply(200, response_bodies("02_users_self.json", "GET", "/api/users/self")[0]))
    client = make_client(stub.url, access_token="secret-pat", org="qa-eval")
    client.get_job(5)
    assert client.whoami().username == "qabot"
    for seen in stub.seen:
        assert seen.headers["Authorization"] == "Bearer secret-pat"
        assert seen.headers["X-Organization"] == "qa-eval"


def test_no_org_header_without_org(stub: StubCvat, make_client: MakeClient):
    stub.on("GET", "/api/jobs/5", Reply(200, _job_body()))
    make_client(stub.url).get_job(5)
    assert "X-Organization" not in stub.seen[0].headers


def test_password_login_uses_session_and_csrf(stub: StubCvat, make_client: MakeClient):
    stub.on(
        "POST",
        "/api/auth/login",
        Reply(200, {"key": "legacy"}, {"Set-Cookie": "sessionid=s3ss; Path=/; HttpOnly"}),
    )
    stub.on("PATCH", "/api/jobs/5", Reply(200, _job_body()))
    client = make_client(stub.url, access_token=None, username="qabot", password="pw")
    client.update_job(5, state="completed")
    login = stub.requests("POST", "/api/auth/login")[0]
    assert login.json() == {"username": "qabot", "password": "pw"}
    patch = stub.requests("PATCH")[0]
    assert "sessionid=s3ss" in patch.headers.get("Cookie", "")
    assert "Authorization" not in patch.headers


def test_password_falls_back_to_basic_without_login_endpoint(stub: StubCvat, make_client: MakeClient):
    stub.on("POST", "/api/auth/login", Reply(405, {"detail": "Method not allowed"}))
    stub.on("GET", "/api/jobs/5", Reply(200, _job_body()))
    client = make_client(stub.url, access_token=None, username="ann1", password="pw")
    client.get_job(5)
    assert stub.requests("GET")[0].headers["Authorization"].startswith("Basic ")


def test_bad_password_is_auth_error(stub: StubCvat, make_client: MakeClient):
    stub.on("POST", "/api/auth/login", Reply(400, {"non_field_errors": ["Unable to log in."]}))
    client = make_client(stub.url, access_token=None, username="ann1", password="wrong")
    with pytest.raises(CvatAuthError, match="login as 'ann1' failed"):
        client.get_job(5)


def test_secret_token_never_in_error_message(stub: StubCvat, make_client: MakeClient):
    stub.on("GET", "/api/jobs/5", Reply(500, {"detail": "boom"}))
    client = make_client(stub.url, access_token="very-secret-token", retry=RetryPolicy(max_attempts=1))
    with pytest.raises(CvatServerError) as info:
        client.get_job(5)
    assert "very-secret-token" not in str(info.value)
    assert json.dumps(info.value.body).find("very-secret") < 0


def test_expired_session_logs_in_again(stub: StubCvat, make_client: MakeClient):
    cookies = {"Set-Cookie": "sessionid=s1; Path=/; HttpOnly"}
    stub.on("POST", "/api/auth/login", Reply(200, {"key": "k"}, cookies))
    stub.on("GET", "/api/jobs/5", Reply(200, _job_body()), Reply(401, {"detail": "expired"}), Reply(200, _job_body()))
    client = make_client(stub.url, access_token=None, username="qabot", password="pw")
    client.get_job(5)
    client.get_job(5)
    assert len(stub.requests("POST", "/api/auth/login")) == 2
    assert client.calls["GET /api/jobs/{id}"] == 3


def test_login_connection_failure_is_retried_on_next_call(make_client: MakeClient, stub: StubCvat):
    stub.on("POST", "/api/auth/login", Reply(503), Reply(200, {}, {"Set-Cookie": "sessionid=s1; Path=/"}))
    stub.on("GET", "/api/jobs/5", Reply(200, _job_body()))
    client = make_client(
        stub.url, access_token=None, username="qabot", password="pw", retry=RetryPolicy(max_attempts=1)
    )
    with pytest.raises(CvatServerError, match="login as 'qabot'"):
        client.get_job(5)
    assert client.get_job(5).id == _job_body()["id"]
    assert "sessionid=s1" in stub.requests("GET")[0].headers["Cookie"]
