"""HTTP transport under :class:`~cvat_ext.cvat.client.CvatClient`: cvat-sdk's ApiClient plus
retries, error translation, JSON decoding, pagination, login and request counting.

Each SDK call is made with ``_parse_response=False`` (a raw ``urllib3`` response) and with
urllib3's own retries off, so that :meth:`Transport.request` alone decides about repeats
(:mod:`cvat_ext.cvat.retry`) and every failure leaves as a :mod:`cvat_ext.errors` exception
(:mod:`cvat_ext.cvat.translate`).
"""

from __future__ import annotations

import collections
import io
import json as _json
import logging
import random
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import urllib3
from cvat_sdk.api_client import ApiClient, Configuration, models
from cvat_sdk.api_client.exceptions import ApiException
from cvat_sdk.api_client.rest import RESTClientObject

from cvat_ext.cvat import wire
from cvat_ext.cvat.records import RetryPolicy, ServerInfo
from cvat_ext.cvat.retry import Failure, backoff_delay_s, is_retryable
from cvat_ext.cvat.translate import Call, body_excerpt, classify, translate
from cvat_ext.errors import CvatAuthError, CvatError, CvatExtError, CvatHttpError

log = logging.getLogger(__name__)

_JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/vnd.cvat+json, application/json"}
_PATH_PARAM = re.compile(r"\{(\w+)\}")


class _Response(NamedTuple):
    status: int
    headers: Mapping[str, str]
    data: bytes


class JsonText(str):
    """A request body already written as JSON text (a merge written from columns): sent as it
    is. cvat-sdk would otherwise walk a decoded copy of it and encode it again, which for a job of
    tens of thousands of shapes costs more than writing it."""


class _RestClient(RESTClientObject):
    """cvat-sdk's REST client; a :class:`JsonText` body goes out as its UTF-8 bytes."""

    def request(
        self,
        method: str,
        url: str,
        query_params: Sequence[tuple[str, Any]] | None = None,
        headers: dict[str, Any] | None = None,
        body: Any = None,
        post_params: Any = None,
        *,
        _parse_response: bool = True,
        _request_timeout: float | tuple[float, float] | None = None,
        _check_status: bool = True,
    ) -> urllib3.HTTPResponse:
        if not isinstance(body, JsonText):
            return super().request(
                method,
                url,
                query_params,
                headers,
                body,
                post_params,
                _parse_response=_parse_response,
                _request_timeout=_request_timeout,
                _check_status=_check_status,
            )
        timeout: urllib3.Timeout | None = None
        if isinstance(_request_timeout, tuple):
            timeout = urllib3.Timeout(connect=_request_timeout[0], read=_request_timeout[1])
        elif _request_timeout:
            timeout = urllib3.Timeout(total=_request_timeout)
        if query_params:
            url += "?" + urlencode(list(query_params))
        sent = {**(headers or {}), "Content-Type": _JSON_HEADERS["Content-Type"]}
        resp = self.pool_manager.request(
            method, url, body=body.encode("utf-8"), headers=sent, timeout=timeout, preload_content=_parse_response
        )
        if _check_status and not 200 <= resp.status <= 299:
            raise ApiException(http_resp=resp)  # translated by status, like the SDK's own subclasses
        return resp


class _CountingApiClient(ApiClient):
    """cvat-sdk's ApiClient, counting requests per path template and remembering the last call."""

    def __init__(self, configuration: Configuration, calls: collections.Counter[str]) -> None:
        super().__init__(configuration)
        self.rest_client = _RestClient(configuration)
        self.calls = calls
        self.last_call: tuple[str, str] = ("", "")

    def call_api(self, resource_path: str, method: str, path_params: Any = None, *args: Any, **kwargs: Any) -> Any:
        template = resource_path.rstrip("/") or "/"
        params = dict(path_params or {})
        path = _PATH_PARAM.sub(lambda m: quote(str(params.get(m.group(1), m.group(0))), safe=""), template)
        self.calls[f"{method} {template}"] += 1
        self.last_call = (method, path)
        return super().call_api(resource_path, method, path_params, *args, **kwargs)

    def _serialize_file(self, file_instance: io.IOBase) -> tuple[str, bytes, str]:
        # the SDK guesses the part's content type from the file name; honour an explicit one
        filename, data, mimetype = super()._serialize_file(file_instance)
        return filename, data, getattr(file_instance, "content_type", None) or mimetype


def _next_page(next_url: str, page: int) -> int:
    values = parse_qs(urlsplit(next_url).query).get("page")
    if values and values[0].isdigit() and int(values[0]) > page:
        return int(values[0])
    return page + 1


class Transport:
    """One CVAT connection: base ``url``, credentials, org header, retry policy, request counter."""

    def __init__(
        self,
        url: str,
        *,
        access_token: str | None,
        username: str | None,
        password: str | None,
        org: str | None,
        retry: RetryPolicy,
        timeout_s: float,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
        rng: random.Random,
    ) -> None:
        self.url = url
        self.retry = retry
        self.timeout_s = timeout_s
        self.calls: collections.Counter[str] = collections.Counter()
        self._sleep = sleep
        self._clock = clock
        self._rng = rng
        self._username = username
        self._password = password
        self._login_pending = access_token is None
        self._session_auth = False  # True while authenticated by a session cookie from _login
        config = Configuration(host=url, access_token=access_token)
        config.retries = False  # our retry loop decides; urllib3 raises the first error as is
        self.api = _CountingApiClient(config, self.calls)
        if org is not None:
            self.api.set_default_header("X-Organization", org)

    def close(self) -> None:
        self.api.close()
        self.api.rest_client.pool_manager.clear()

    def request(self, what: str, send: Callable[[], Any]) -> _Response:
        """Run ``send`` (one SDK call with ``_parse_response=False``) with retries; raw response.

        With password auth the session is opened on first use and, if CVAT later answers 401
        (session expired), opened again once and the call repeated.
        """
        if self._login_pending:
            self._login()
        try:
            return self._request_with_retries(what, send)
        except CvatAuthError:
            if not self._session_auth:
                raise
            log.info("CVAT session of '%s' rejected; logging in again", self._username)
            self._session_auth = False
            self.api.cookies.clear()
            self.api.configuration.api_key.pop("csrfHeaderAuth", None)
            self._login()
            return self._request_with_retries(what, send)

    def _request_with_retries(self, what: str, send: Callable[[], Any], *, repeatable: bool = False) -> _Response:
        """``send`` under the retry policy; ``repeatable`` marks a POST that is safe to repeat
        (login: a second session changes nothing), so 5xx and dropped connections retry it too."""
        policy = self.retry
        start = self._clock()
        attempt = 0
        while True:
            attempt += 1
            self.api.last_call = ("", "")
            try:
                _, resp = send()
                try:
                    data = resp.data or b""
                finally:
                    resp.release_conn()
                return _Response(int(resp.status), resp.headers, bytes(data))
            except CvatExtError:
                raise
            except Exception as exc:  # every third-party failure is translated below
                method, path = self.api.last_call
                call = Call(what, method or "?", path or "(not sent)")
                failure = classify(exc)
                elapsed = self._clock() - start
                note = f"after {attempt} attempts over {elapsed:.1f} s" if attempt > 1 else ""
                if not method or not is_retryable("PUT" if repeatable else method, failure):
                    hint = ""
                    if method and failure in (Failure.DROPPED, Failure.SERVER_ERROR):
                        hint = f"not retried: the {method} may have reached CVAT, check before repeating it"
                    raise translate(exc, call, base_url=self.url, attempts_note=note, hint=hint) from exc
                if attempt >= policy.max_attempts:
                    note = f"after {attempt} attempts over {elapsed:.1f} s"
                    raise translate(exc, call, base_url=self.url, attempts_note=note) from exc
                delay = backoff_delay_s(policy, attempt, self._rng)
                if failure is Failure.THROTTLED:
                    err = translate(exc, call)
                    if isinstance(err, CvatHttpError) and err.retry_after_s is not None:
                        delay = err.retry_after_s
                if elapsed + delay > policy.budget_s:
                    note = (
                        f"after {attempt} attempts over {elapsed:.1f} s; next wait {delay:.1f} s "
                        f"exceeds the {policy.budget_s:g} s retry budget"
                    )
                    raise translate(exc, call, base_url=self.url, attempts_note=note) from exc
                log.warning("%s failed (%s), retry %d in %.2f s", call, failure.value, attempt, delay)
                self._sleep(delay)

    def json(self, what: str, send: Callable[[], Any]) -> Any:
        return self._decode(what, self.request(what, send).data)

    def _decode(self, what: str, data: bytes) -> Any:
        """A response body decoded (None when empty), else a :class:`CvatError` naming ``what``."""
        if not data.strip():
            return None
        try:
            return _json.loads(data)
        except ValueError as exc:
            method, path = self.api.last_call
            text = body_excerpt(data.decode("utf-8", "replace"))
            raise CvatError(f"{what}: {method} {path} returned a non-JSON body: {text}") from exc

    def object(self, what: str, send: Callable[[], Any]) -> dict[str, Any]:
        return wire.expect_mapping(self.json(what, send), what)

    def object_bytes(self, what: str, send: Callable[[], Any]) -> bytes:
        """The raw body of a call that answers a JSON object, not decoded (a large annotations body
        is read straight into columns). Only its ends are checked here, so that a proxy's error
        page, an empty answer or a JSON list fails as :meth:`object` fails; the reader checks the
        rest."""
        data = self.request(what, send).data
        text = data.strip()
        if text.startswith(b"{") and text.endswith(b"}"):
            return data
        # not an object (or one behind a byte-order mark): the decoded call's check decides
        wire.expect_mapping(self._decode(what, text), what)
        return data

    def pages(self, what: str, send_page: Callable[[int], Any]) -> Iterator[dict[str, Any]]:
        """All results of a paginated list endpoint, following ``next`` page by page."""
        page = 1
        while True:
            data = self.json(what, lambda page=page: send_page(page))  # type: ignore[misc]
            if isinstance(data, list):  # an unpaginated answer
                yield from data
                return
            body = wire.expect_mapping(data, what)
            results = body.get("results")
            if not isinstance(results, list):
                raise CvatError(f"{what}: unexpected CVAT response: paginated list without 'results'")
            yield from results
            next_url = body.get("next")
            if not next_url or not results:
                return
            page = _next_page(str(next_url), page)

    @property
    def opts(self) -> dict[str, Any]:
        return {"_parse_response": False, "_request_timeout": self.timeout_s}

    def raw(
        self,
        endpoint: Any,
        *,
        path_params: Mapping[str, Any] | None = None,
        query: Sequence[tuple[str, Any]] = (),
        body: Any = None,
    ) -> Any:
        """Call an SDK endpoint definition with a raw JSON body (no typed request model)."""
        settings = endpoint.settings
        return self.api.call_api(
            settings["endpoint_path"],
            settings["http_method"],
            dict(path_params or {}),
            list(query),
            dict(_JSON_HEADERS) if body is not None else {"Accept": _JSON_HEADERS["Accept"]},
            body=body,
            auth_settings=settings["auth"],
            _parse_response=False,
            _request_timeout=self.timeout_s,
        )

    def _login(self) -> None:
        """Session login for username/password; falls back to HTTP Basic without a login endpoint."""
        assert self._username is not None and self._password is not None
        what = f"login as '{self._username}'"
        request = models.LoginSerializerExRequest(username=self._username, password=self._password)
        self._login_pending = False
        try:
            # start-up meets CVAT's bad moments here first: same retries as any idempotent call
            resp = self._request_with_retries(
                what, lambda: self.api.auth_api.create_login(request, **self.opts), repeatable=True
            )
        except CvatExtError as exc:
            self._login_pending = True  # no credentials in place: the next call tries again
            if not isinstance(exc, CvatHttpError):
                raise
            if exc.status in (404, 405):
                log.info("CVAT at %s has no session login; using HTTP Basic auth", self.url)
                self._login_pending = False
                self.api.configuration.username = self._username
                self.api.configuration.password = self._password
                return
            if exc.status in (400, 401, 403):
                raise CvatAuthError(
                    f"CVAT login as '{self._username}' failed: {exc.body or exc}",
                    status=exc.status,
                    method=exc.method,
                    path=exc.path,
                    body=exc.body,
                ) from exc
            raise
        getlist = getattr(resp.headers, "getlist", None)
        cookie_headers = getlist("Set-Cookie") if getlist else [resp.headers.get("Set-Cookie") or ""]
        for header in cookie_headers:  # one header per cookie: a joined line does not parse reliably
            self.api.cookies.load(header)
        if "csrftoken" in self.api.cookies:
            self.api.configuration.api_key["csrfHeaderAuth"] = self.api.cookies["csrftoken"].value
        self._session_auth = "sessionid" in self.api.cookies
        if not self._session_auth:
            key = None
            try:
                key = _json.loads(resp.data or b"{}").get("key")
            except (ValueError, AttributeError):
                key = None
            if key:
                self.api.configuration.api_key["tokenAuth"] = str(key)
            else:  # neither a session nor a token came back: authenticate every call instead
                self.api.configuration.username = self._username
                self.api.configuration.password = self._password


class ClientBase:
    """What the groups of CvatClient methods (``quality``, ``publishing``) share."""

    _t: Transport
    _api: _CountingApiClient
    _clock: Callable[[], float]
    _sleep: Callable[[float], None]
    _server: ServerInfo | None
