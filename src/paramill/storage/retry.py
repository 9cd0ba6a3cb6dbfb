"""Remote errors: which are transient (retried with backoff within one time budget) and the
one-line StorageError every other one becomes."""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from ..errors import MissingBackendError, StorageError
from .locations import EXTRAS, display_url, display_urls, protocol_of

logger = logging.getLogger("paramill.storage")
T = TypeVar("T")

#: seconds one remote read or write may take, retries included (env PARAMILL_STORAGE_TIMEOUT)
DEFAULT_TIMEOUT = 120.0
_MAX_BACKOFF = 8.0

_TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}
_TRANSIENT_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "TooManyRequests",
    "TooManyRequestsException",
    "ServiceUnavailable",
    "InternalError",
    "RequestTimeout",
    "ServerBusy",
    "OperationTimedOut",
}
# Exception classes (matched by name anywhere in the MRO, so no SDK is imported to check) that
# mean the request did not get a definite answer.
_TRANSIENT_TYPES = {
    "ConnectionError",  # builtin: refused, reset, aborted, broken pipe; requests' too
    "TimeoutError",
    "FSTimeoutError",
    "EndpointConnectionError",
    "ConnectionClosedError",
    "ReadTimeoutError",
    "ConnectTimeoutError",
    "ServiceRequestError",
    "ServiceResponseError",
    "ClientConnectionError",
    "ClientPayloadError",
    "ServerTimeoutError",
    "IncompleteRead",
    "RemoteDisconnected",
    "ProtocolError",
    "ChunkedEncodingError",
}
_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    412: "Precondition Failed",
    425: "Too Early",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _status_of(exc: BaseException) -> int | None:
    """The HTTP status somewhere in the exception chain, whichever SDK raised it."""
    for err in _chain(exc):
        response = getattr(err, "response", None)
        if isinstance(response, dict):  # botocore
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if isinstance(status, int):
                return status
        for holder in (err, response):
            for attr in ("status", "status_code", "code"):
                value = getattr(holder, attr, None)
                if isinstance(value, int) and 100 <= value <= 599:
                    return value
    return None


def _error_code(exc: BaseException) -> str | None:
    for err in _chain(exc):
        response = getattr(err, "response", None)
        if isinstance(response, dict):
            code = response.get("Error", {}).get("Code")
            if code:
                return str(code)
        code = getattr(err, "error_code", None)  # azure
        if code:
            return str(code)
    return None


def _retry_after(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait (a Retry-After header), if it said."""
    for err in _chain(exc):
        response = getattr(err, "response", None)
        if isinstance(response, dict):  # botocore
            headers = response.get("ResponseMetadata", {}).get("HTTPHeaders")
        else:
            headers = getattr(err, "headers", None) or getattr(response, "headers", None)
        if not headers:
            continue
        value = headers.get("Retry-After") or headers.get("retry-after")
        if value is None:
            continue
        try:
            return max(0.0, float(value))
        except ValueError:
            return None  # an HTTP date: rare enough to use our own backoff
    return None


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, (FileNotFoundError, PermissionError, StorageError)):
        return False
    status = _status_of(exc)
    if status is not None:
        return status in _TRANSIENT_STATUS
    if _error_code(exc) in _TRANSIENT_CODES:
        return True
    return any(cls.__name__ in _TRANSIENT_TYPES for err in _chain(exc) for cls in type(err).__mro__)


def _reason(exc: BaseException) -> str:
    """Why an operation failed, in a few words."""
    status = _status_of(exc)
    code = _error_code(exc)
    if status is not None:
        text = f"HTTP {status} {_REASONS.get(status, '')}".rstrip()
        if code and code.replace(" ", "") not in text.replace(" ", ""):
            text += f": {code}"
        return text
    if code:
        return code
    root = list(_chain(exc))[-1]
    detail = display_urls(str(root).strip().splitlines()[0]) if str(root).strip() else ""
    return f"{type(root).__name__}: {detail}" if detail else type(root).__name__


def translate(url: str, exc: BaseException, writing: bool) -> StorageError:
    """One StorageError, with a one-line message naming the URL, for any backend's error."""
    if isinstance(exc, StorageError):
        return exc
    url = display_url(url)  # the messages name the location without its credentials
    if isinstance(exc, ImportError) or (
        isinstance(exc, ValueError) and "Protocol not known" in str(exc)
    ):
        proto = protocol_of(url) or ""
        extra = EXTRAS.get(proto)
        if extra:
            return MissingBackendError(
                f"{url}: {proto}:// needs an optional dependency: pip install 'paramill[{extra}]'"
            )
        if isinstance(exc, ImportError):
            return MissingBackendError(f"{url}: {proto}:// needs a package: {exc}")
        return StorageError(f"{url}: no storage backend for {proto}://")
    status = _status_of(exc)
    code = _error_code(exc) or ""
    not_found = isinstance(exc, FileNotFoundError) or status == 404 or "NotFound" in code
    if not_found:
        where = f" ({_reason(exc)})" if status else ""
        if not status and protocol_of(url) in ("http", "https"):
            where = " (HTTP 404 Not Found)"  # fsspec's http raises a bare FileNotFoundError
        if writing:
            return StorageError(
                f"{url}: cannot write: the bucket or container does not exist{where}"
            )
        if "Bucket" in code or "Container" in code:
            return StorageError(f"{url}: not found: the bucket or container does not exist{where}")
        return StorageError(f"{url}: not found{where}")
    if isinstance(exc, PermissionError) or status in (401, 403):
        return StorageError(
            f"{url}: access denied ({_reason(exc)}): check the credentials and permissions"
        )
    if isinstance(exc, NotImplementedError):
        action = "written" if writing else "read"
        return StorageError(f"{url}: this store cannot be {action} ({exc or 'not supported'})")
    return StorageError(f"{url}: {_reason(exc)}")


def _timeout_budget() -> float:
    value = os.environ.get("PARAMILL_STORAGE_TIMEOUT")
    try:
        return float(value) if value else DEFAULT_TIMEOUT
    except ValueError:
        return DEFAULT_TIMEOUT


def with_retries(url: str, call: Callable[[float], T], writing: bool) -> T:
    """Run ``call(seconds)`` until it succeeds, fails for good, or the time budget is spent.

    One attempt gets at most a quarter of the budget (10 s at least): the SDKs retry inside an
    attempt too (Azure's first backoff is 15 s), and a cut-short attempt still leaves time for
    ours, which see the error and say why.
    """
    budget = _timeout_budget()
    start = time.monotonic()
    attempt = 0
    known = ""
    while True:
        attempt += 1
        left = budget - (time.monotonic() - start)
        limit = max(min(left, max(10.0, budget / 4)), 0.1)
        try:
            return call(limit)
        except Exception as exc:
            left = budget - (time.monotonic() - start)
            if not _transient(exc):
                raise translate(url, exc, writing) from exc
            shown = display_url(url)
            if any(type(err).__name__ == "FSTimeoutError" for err in _chain(exc)):
                # our own cut: an earlier attempt's error says more, if there was one
                reason = known or "no answer in time (is the store up and reachable?)"
            else:
                reason = known = _reason(exc)
            backoff = min(_MAX_BACKOFF, 0.25 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            asked = _retry_after(exc) or 0.0
            if left < 0.1 or asked > left:
                elapsed = time.monotonic() - start
                raise StorageError(
                    f"{shown}: gave up after {attempt} attempt{'s' * (attempt > 1)} in "
                    f"{elapsed:.1f} s: {reason}"
                ) from exc
            delay = min(max(backoff, asked), left - 0.05)  # the last try just before the end
            logger.warning("%s: %s; retrying in %.1f s", shown, reason, delay)
            time.sleep(delay)
