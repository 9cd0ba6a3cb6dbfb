"""Reading and writing notebooks and parameter files on any storage.

Local paths are handled directly (atomic writes, parent folders created); every URL goes through
fsspec, so any protocol fsspec knows (s3, gs, az, http, sftp, hdfs, ...) works with no code here.
``-`` means stdin/stdout.

Remote reads and writes are one request each (``cat_file``/``pipe_file``): an upload sends the
whole notebook, so an object store never holds a truncated one. Transient failures (HTTP 408, 429,
5xx, throttling codes, refused or reset connections, timeouts) are retried with exponential backoff
within one time budget per operation (``PARAMILL_STORAGE_TIMEOUT``, default 120 s); everything else
(not found, access denied, ...) fails at once with a one-line message naming the URL.

Storage options: a flat key applies to every URL; a key naming a protocol holds options for that
protocol only, so one run can read from Azure and write to S3::

    {"anon": False, "s3": {"endpoint_url": "http://127.0.0.1:9000"}, "az": {"account_name": "x"}}

(on the command line: ``--storage-option s3.endpoint_url=http://127.0.0.1:9000``). Spellings of
one store share their options (s3/s3a, gs/gcs, az/abfs/abfss/abs, http/https). Options the SDKs
take from the environment keep working (AWS_* and profiles, GOOGLE_APPLICATION_CREDENTIALS,
AZURE_STORAGE_* and azure-identity's AZURE_CLIENT_*, fsspec's FSSPEC_<PROTOCOL>_<OPTION>);
paramill adds the endpoint of an S3-compatible store from AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL
or papermill's BOTO3_ENDPOINT_URL, and anonymous access to a GCS emulator (STORAGE_EMULATOR_HOST).
The environment is part of the filesystem cache key, so changing it takes effect at once.
"""

from __future__ import annotations

import logging
import os
import random
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from .errors import MissingDependencyError, StorageError

logger = logging.getLogger("paramill.storage")
T = TypeVar("T")

#: seconds one remote read or write may take, retries included (env PARAMILL_STORAGE_TIMEOUT)
DEFAULT_TIMEOUT = 120.0
_MAX_BACKOFF = 8.0

# Which extra installs the fsspec implementation of a protocol.
_EXTRAS = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "az": "azure",
    "abfs": "azure",
    "abfss": "azure",
    "abs": "azure",
    "http": "http",
    "https": "http",
}
# Spellings of one store; options scoped to any of them apply to all.
_FAMILIES = [{"s3", "s3a"}, {"gs", "gcs"}, {"az", "abfs", "abfss", "abs"}, {"http", "https"}]
# Environment variables that change what a filesystem instance does, per family (cache key).
_ENV_PREFIXES = (
    "AWS_",
    "BOTO3_",
    "AZURE_",
    "GOOGLE_",
    "GCSFS_",
    "STORAGE_EMULATOR_HOST",
    "FSSPEC_",
)
_ENDPOINT_VARS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "BOTO3_ENDPOINT_URL")

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


def protocol_of(path: str) -> str | None:
    """The URL scheme of ``path`` (``None`` for local paths and ``-``)."""
    if "://" not in path:
        return None
    scheme = path.split("://", 1)[0]
    if "::" in scheme:  # a chained URL (simplecache::s3://...): the outermost protocol
        scheme = scheme.split("::", 1)[0]
    # a Windows drive letter is not a protocol
    return None if len(scheme) == 1 else scheme.lower()


def is_local(path: str | os.PathLike) -> bool:
    path = os.fspath(path)
    return path != "-" and protocol_of(path) in (None, "file")


# Stores whose URL names a container before the '@' (abfs://CONTAINER@ACCOUNT...): not user-info.
_CONTAINER_AT = {"az", "abfs", "abfss"}
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>()]+")


def display_url(path: Any) -> Any:
    """A location as paramill logs, stores and prints it: a URL loses its user-info
    (``user:password@``) and its query string (an Azure SAS token, a signed URL's signature,
    ``?token=...``); local paths and non-strings are returned as they are. The real location
    is still the one read and written."""
    if not isinstance(path, str) or is_local(path) or path == "-":
        return path
    return "::".join(_without_credentials(part) for part in path.split("::"))


def _without_credentials(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, tail = rest.partition("/")
    user, at, host = authority.rpartition("@")
    if at and (scheme.lower() not in _CONTAINER_AT or ":" in user):
        authority = host
    return f"{scheme}{sep}{authority}{slash}{tail}".split("?", 1)[0]


def display_urls(text: str) -> str:
    """``text`` (an SDK's error message, say) with every URL in it shown as ``display_url``."""
    return _URL_IN_TEXT.sub(lambda m: display_url(m[0]), text)


def same_location(a: Any, b: Any) -> bool:
    """Whether two locations name one file: local paths once resolved (symlinks, ``..``,
    ``file://``), URLs when they are the same string. ``-`` and non-strings never match."""
    if not isinstance(a, str) or not isinstance(b, str) or "-" in (a, b):
        return False
    return location_key(a) == location_key(b)


def location_key(path: str) -> str:
    """One spelling per location: a local path resolved and case-normalized, a URL as is."""
    if not is_local(path):
        return path
    return os.path.normcase(os.path.realpath(_local_path(path)))


def _local_path(path: str) -> str:
    return path[len("file://") :] if path.startswith("file://") else path


# -- locations -------------------------------------------------------------------------------


def _normalize_url(url: str) -> tuple[str, dict[str, Any]]:
    """papermill's spellings to fsspec's, with the options the spelling carries.

    ``abs://ACCOUNT.blob.core.windows.net/CONTAINER/PATH?SAS`` -> ``az://CONTAINER/PATH`` with
    ``account_name`` and ``sas_token``; a github.com file page -> its raw content.
    """
    scheme, rest = url.split("://", 1)
    scheme = scheme.lower()
    if scheme == "abs":
        host, _, path = rest.partition("/")
        path, _, sas = path.partition("?")
        account = host.split(".", 1)[0] if host.endswith(".blob.core.windows.net") else ""
        if not account or not path:
            raise StorageError(
                f"{display_url(url)}: expected abs://ACCOUNT.blob.core.windows.net/CONTAINER/PATH"
            )
        extra: dict[str, Any] = {"account_name": account}
        if sas:
            extra["sas_token"] = sas
        return "az://" + path, extra
    if scheme in ("http", "https") and rest.startswith("github.com/"):
        # papermill reads github.com/ORG/REPO/blob/REF/PATH through GitHub's API; the raw file
        # is the same content (GITHUB_ACCESS_TOKEN, if set, for private repositories)
        parts = rest.split("?", 1)[0].split("/")
        if len(parts) >= 6 and parts[3] in ("blob", "raw"):
            org, repo, ref, path = parts[1], parts[2], parts[4], "/".join(parts[5:])
            token = os.environ.get("GITHUB_ACCESS_TOKEN")
            extra = {"headers": {"Authorization": f"token {token}"}} if token else {}
            return f"https://raw.githubusercontent.com/{org}/{repo}/{ref}/{path}", extra
    if scheme == "adl":
        raise StorageError(
            f"{display_url(url)}: adl:// is Azure Data Lake Storage Gen1, which Azure retired in "
            "2024; use az://CONTAINER/PATH or abfs://CONTAINER@ACCOUNT.dfs.core.windows.net/PATH"
        )
    return url, {}


def _family(protocol: str) -> set[str]:
    for family in _FAMILIES:
        if protocol in family:
            return family
    return {protocol}


def _known_protocols() -> set[str]:
    import fsspec
    from fsspec.registry import registry

    return set(fsspec.available_protocols()) | set(registry) | set(_EXTRAS)


def options_for(protocol: str, storage_options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The options that apply to a URL of ``protocol``: the flat keys, then the keys scoped to
    the protocol's family (which win), then defaults from the environment."""
    flat: dict[str, Any] = {}
    scoped: dict[str, Any] = {}
    if storage_options:
        known = _known_protocols()
        family = _family(protocol)
        for key, value in storage_options.items():
            if key in known and isinstance(value, Mapping):
                if key in family:
                    scoped.update(value)
            else:
                flat[key] = value
    options = {**flat, **scoped}
    _add_env_defaults(protocol, options)
    return options


def _add_env_defaults(protocol: str, options: dict[str, Any]) -> None:
    family = _family(protocol)
    if "s3" in family:
        # botocore reads AWS_* too, but only from version 1.31 on; BOTO3_ENDPOINT_URL is
        # papermill's name for it
        endpoint = next((os.environ[k] for k in _ENDPOINT_VARS if os.environ.get(k)), None)
        client_kwargs = options.get("client_kwargs") or {}
        if endpoint and "endpoint_url" not in options and "endpoint_url" not in client_kwargs:
            options["endpoint_url"] = endpoint
    elif "gs" in family:
        # an emulator takes no credentials; without this gcsfs looks for Google ones first
        if os.environ.get("STORAGE_EMULATOR_HOST") and "token" not in options:
            options["token"] = "anon"


_cache: dict[tuple, Any] = {}
_cache_lock = threading.Lock()


def _filesystem_class(protocol: str, options: Mapping[str, Any]) -> type:
    import fsspec

    emulated = os.environ.get("STORAGE_EMULATOR_HOST") or options.get("endpoint_url")
    if protocol in ("gs", "gcs") and emulated:
        # gcsfs's default class (unless GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false before import)
        # makes a gRPC call with a 60 s deadline per operation, which an emulator never answers
        from gcsfs.core import GCSFileSystem

        return GCSFileSystem
    return fsspec.get_filesystem_class(protocol)


def _filesystem(protocol: str, options: dict[str, Any]) -> Any:
    """A filesystem instance, reused while the options and the storage environment are the same
    (fsspec's own cache ignores the environment, so a changed AWS_* would go unseen)."""
    cls = _filesystem_class(protocol, options)
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(_ENV_PREFIXES)))
    key = (cls, repr(sorted(options.items())), env, os.getpid())
    with _cache_lock:
        fs = _cache.get(key)
        if fs is None:
            fs = cls(**options, skip_instance_cache=True)
            if len(_cache) > 32:
                _cache.clear()
            _cache[key] = fs
        return fs


def _resolve(url: str, storage_options: Mapping[str, Any] | None) -> tuple[Any, str]:
    """(filesystem, path within it) for a URL."""
    import fsspec

    normalized, extra = _normalize_url(url)
    protocol = protocol_of(normalized) or "file"
    options = {**extra, **options_for(protocol_of(url) or protocol, storage_options)}
    if "::" in normalized:  # chained URLs: fsspec splits the options itself
        return fsspec.core.url_to_fs(normalized, **options)
    fs = _filesystem(protocol, options)
    return fs, fs._strip_protocol(normalized)


# -- errors and retries ------------------------------------------------------------------------


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


def _translate(url: str, exc: BaseException, writing: bool) -> StorageError:
    """One StorageError, with a one-line message naming the URL, for any backend's error."""
    if isinstance(exc, StorageError):
        return exc
    url = display_url(url)  # the messages name the location without its credentials
    if isinstance(exc, ImportError) or (
        isinstance(exc, ValueError) and "Protocol not known" in str(exc)
    ):
        proto = protocol_of(url) or ""
        extra = _EXTRAS.get(proto)
        if extra:
            return MissingDependencyError(
                f"{url}: {proto}:// needs an optional dependency: pip install 'paramill[{extra}]'"
            )
        if isinstance(exc, ImportError):
            return MissingDependencyError(f"{url}: {proto}:// needs a package: {exc}")
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


def _with_retries(url: str, call: Callable[[float], T], writing: bool) -> T:
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
                raise _translate(url, exc, writing) from exc
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


def _run(fs: Any, method: str, *args: Any, timeout: float) -> Any:
    """Call a filesystem method, cancelling it after ``timeout`` seconds when it is async (so a
    late upload cannot land after a newer one)."""
    from fsspec.asyn import AsyncFileSystem, sync

    if isinstance(fs, AsyncFileSystem) and not fs.asynchronous:
        return sync(fs.loop, getattr(fs, "_" + method), *args, timeout=timeout)
    return getattr(fs, method)(*args)


# -- reading and writing -----------------------------------------------------------------------


def read_bytes(url: str, storage_options: Mapping[str, Any] | None = None) -> bytes:
    """The whole content of a remote object (one GET, retried when transient)."""
    try:
        fs, path = _resolve(url, storage_options)
    except Exception as exc:
        raise _translate(url, exc, writing=False) from exc
    return _with_retries(url, lambda left: _run(fs, "cat_file", path, timeout=left), False)


def write_bytes(url: str, data: bytes, storage_options: Mapping[str, Any] | None = None) -> None:
    """Replace a remote object with ``data`` in one upload, retried when transient."""
    try:
        fs, path = _resolve(url, storage_options)
    except Exception as exc:
        raise _translate(url, exc, writing=True) from exc
    _with_retries(url, lambda left: _run(fs, "pipe_file", path, data, timeout=left), True)


def read_text(path: str | os.PathLike, storage_options: dict[str, Any] | None = None) -> str:
    """Read a whole text file (UTF-8) from a local path, ``-`` (stdin) or a URL."""
    path = os.fspath(path)
    if path == "-":
        return sys.stdin.read()
    if is_local(path):
        return _read_local(path)
    data = read_bytes(path, storage_options)
    if path.split("?", 1)[0].endswith(".gz") and data[:2] == b"\x1f\x8b":
        import gzip  # as papermill's S3 reader: a gzipped notebook or parameter file

        data = gzip.decompress(data)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StorageError(f"{display_url(path)}: not UTF-8 text ({exc.reason})") from None


def write_text(
    path: str | os.PathLike, text: str, storage_options: dict[str, Any] | None = None
) -> None:
    """Write ``text`` completely or not at all.

    Local files are written to a temporary file in the same folder and renamed over the target,
    so a reader never sees a half-written notebook; missing parent folders are created. Remote
    objects are replaced by one upload of the whole text.
    """
    path = os.fspath(path)
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    if is_local(path):
        _write_local_atomic(_local_path(path), text)
        return
    write_bytes(path, text.encode("utf-8"), storage_options)


def _read_local(path: str) -> str:
    try:
        with open(_local_path(path), encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise StorageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise StorageError(f"{path}: is a directory, not a file") from None
    except PermissionError:
        raise StorageError(f"{path}: permission denied") from None
    except UnicodeDecodeError as exc:
        raise StorageError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise StorageError(f"{path}: {exc.strerror or exc}") from None


def _umask() -> int:
    """The process umask, read without setting it (os.umask is racy across threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def _write_local_atomic(path: str, text: str) -> None:
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise StorageError(f"{path}: cannot write ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        if target.exists():
            # keep the permissions of the file we replace
            os.chmod(tmp, target.stat().st_mode & 0o7777)
        else:
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp made it 0600; a new file gets the usual
        os.replace(tmp, target)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise StorageError(f"{path}: cannot write ({exc.strerror or exc})") from None
