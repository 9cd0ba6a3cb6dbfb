"""What the API routes and the pages share: the service on ``app.state``, run lookups, limits."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from .service import Service
from .store import Run, as_json

MAX_BODY = 1 << 20
DRAIN = 16 << 20
COOKIE = "paramill_serve_token"


def service_of(request: Request) -> Service:
    return request.app.state.service


def parameter_named(message: str, names: list[str]) -> str | None:
    for quoted in re.findall(r"'([^']+)'", message):
        if quoted in names:
            return quoted
    return None


def who(request: Request) -> str:
    return request.headers.get("x-paramill-user") or (
        request.client.host if request.client else "")


def run_out(run: Run | dict[str, Any]) -> dict[str, Any]:
    data = run if isinstance(run, dict) else as_json(run)
    return {**data, "url": f"/api/runs/{data['id']}"}


async def body_json(request: Request) -> Any:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        return JSONResponse({"detail": f"request body over {MAX_BODY} bytes"}, 413)
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return JSONResponse({"detail": "the body is not JSON"}, 400)


async def find(request: Request, run_id: str) -> Run | None:
    return await asyncio.to_thread(service_of(request).store.get, run_id)


def missing(run_id: str) -> Response:
    return JSONResponse({"detail": f"no run {run_id!r}"}, 404)
