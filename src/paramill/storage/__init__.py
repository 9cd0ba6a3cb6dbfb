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

import os
import sys
from typing import Any

from ..errors import StorageError
from .local import read_local, write_local_atomic
from .locations import (
    display_url,
    display_urls,
    is_local,
    is_url,
    local_path,
    location_key,
    protocol_of,
    same_location,
)
from .remote import options_for, read_bytes, write_bytes
from .retry import DEFAULT_TIMEOUT

__all__ = [
    "DEFAULT_TIMEOUT",
    "display_url",
    "display_urls",
    "is_local",
    "is_url",
    "location_key",
    "options_for",
    "protocol_of",
    "read_bytes",
    "read_text",
    "same_location",
    "write_bytes",
    "write_text",
]


def read_text(path: str | os.PathLike, storage_options: dict[str, Any] | None = None) -> str:
    """Read a whole text file (UTF-8) from a local path, ``-`` (stdin) or a URL."""
    path = os.fspath(path)
    if path == "-":
        return sys.stdin.read()
    if is_local(path):
        return read_local(path)
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
        write_local_atomic(local_path(path), text)
        return
    write_bytes(path, text.encode("utf-8"), storage_options)
