"""The FastAPI application: JSON API under /api, pages elsewhere, static files shipped here.

Every request needs the token: ``Authorization: Bearer T``, or ``?token=T`` once (a cookie
then carries it). Request bodies over ``MAX_BODY`` bytes are refused (413). The routes live in
``api_routes`` and ``pages``; they reach the service through ``request.app.state``.
"""

from __future__ import annotations

import hmac
import json
import os
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from . import api_routes, pages
from .common import COOKIE, DRAIN, MAX_BODY
from .notebooks import default_for_input
from .service import Service

HERE = os.path.dirname(__file__)
__all__ = ["COOKIE", "DRAIN", "MAX_BODY", "create_app"]


def create_app(service: Service, token: str) -> FastAPI:
    app = FastAPI(
        title="paramill serve",
        version="1",
        description="Parameterized notebooks as an HTTP API: list notebooks, start runs, "
        "follow them, download their outputs.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = service
    app.state.token = token
    app.state.templates = _templates()
    app.mount("/static", StaticFiles(directory=os.path.join(HERE, "static")), name="static")
    app.middleware("http")(guard)
    app.include_router(api_routes.router)
    app.include_router(pages.router)
    return app


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=os.path.join(HERE, "templates"))
    templates.env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=1, default=str)
    templates.env.globals["default_for_input"] = default_for_input
    return templates


def _given_token(request: Request) -> tuple[str | None, str | None]:
    """The token the request carries (header, query or cookie), and the one from the query."""
    given = None
    header = request.headers.get("authorization", "")
    if header.lower().startswith(("bearer ", "token ")):
        given = header.split(" ", 1)[1].strip()
    from_query = request.query_params.get("token")
    return given or from_query or request.cookies.get(COOKIE), from_query


async def guard(request: Request, call_next: Any) -> Response:
    token: str = request.app.state.token
    given, from_query = _given_token(request)
    if not given or not hmac.compare_digest(given.encode(), token.encode()):
        if request.url.path.startswith("/api") or request.url.path == "/openapi.json":
            return JSONResponse({"detail": "a valid token is required"}, 401)
        return HTMLResponse("<h1>401</h1><p>Open the URL with <code>?token=</code> that "
                            "<code>paramill serve</code> printed.</p>", 401)
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_BODY:
        # read (and drop) what the client sends before answering, up to DRAIN bytes:
        # closing on a client still sending resets the connection before it reads the 413
        if int(length) <= DRAIN:
            async for _chunk in request.stream():
                pass
        return JSONResponse({"detail": f"request body over {MAX_BODY} bytes"}, 413)
    response = await call_next(request)
    if from_query:
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
    return response
