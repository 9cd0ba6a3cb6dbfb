"""The FastAPI application: JSON API under /api, pages elsewhere, static files shipped here.

Every request needs the token: ``Authorization: Bearer T``, or ``?token=T`` once (a cookie
then carries it). Request bodies over ``MAX_BODY`` bytes are refused (413).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import re
import uuid
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from ..errors import ParameterError, ParamillError
from . import charts
from .notebooks import default_for_input, form_values
from .service import QueueFull, Service
from .store import FINAL, STATUSES, Run, as_json

HERE = os.path.dirname(__file__)
MAX_BODY = 1 << 20
DRAIN = 16 << 20
COOKIE = "paramill_serve_token"


def _parameter_named(message: str, names: list[str]) -> str | None:
    for quoted in re.findall(r"'([^']+)'", message):
        if quoted in names:
            return quoted
    return None


def create_app(service: Service, token: str) -> FastAPI:
    app = FastAPI(
        title="paramill serve",
        version="1",
        description="Parameterized notebooks as an HTTP API: list notebooks, start runs, "
        "follow them, download their outputs.",
        docs_url=None,
        redoc_url=None,
    )
    templates = Jinja2Templates(directory=os.path.join(HERE, "templates"))
    templates.env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=1, default=str)
    templates.env.globals["default_for_input"] = default_for_input
    app.mount("/static", StaticFiles(directory=os.path.join(HERE, "static")), name="static")
    store, catalog = service.store, service.catalog

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        given = None
        header = request.headers.get("authorization", "")
        if header.lower().startswith(("bearer ", "token ")):
            given = header.split(" ", 1)[1].strip()
        from_query = request.query_params.get("token")
        given = given or from_query or request.cookies.get(COOKIE)
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

    # -- API -----------------------------------------------------------------------------------
    @app.get("/api/notebooks")
    async def api_notebooks() -> list[dict[str, Any]]:
        found = await asyncio.to_thread(catalog.all)
        return [
            {"name": s.name, "title": s.title,
             "parameters": {k: {"type": v["type"], "default": v["default"], "help": v["help"]}
                            for k, v in s.parameters.items()}}
            for s in found
        ]

    @app.post("/api/runs", status_code=202)
    async def api_submit(request: Request, wait: float = 0) -> Response:
        body = await body_json(request)
        if isinstance(body, Response):
            return body
        if not isinstance(body, dict) or not isinstance(body.get("notebook"), str):
            return JSONResponse({"detail": "body must be {\"notebook\": NAME, \"parameters\": "
                                 "{...}}"}, 422)
        params = body.get("parameters") or {}

        def checked_submit(run_id: str) -> Response | Run:
            # one thread hop: find the notebook, check the values, queue the run
            served = catalog.get(body["notebook"])
            if served is None or served.nb is None:
                return JSONResponse({"detail": f"no notebook {body['notebook']!r}"}, 404)
            try:
                catalog.check(served, params)
            except ParameterError as exc:
                names = [*served.parameters, *(params if isinstance(params, dict) else [])]
                return JSONResponse({"detail": exc.message,
                                     "parameter": _parameter_named(exc.message, names)}, 422)
            try:
                return service.submit(served.name, params, who(request), run_id)
            except QueueFull as exc:
                return JSONResponse({"detail": f"queue full: {exc}"}, 429)

        run_id = uuid.uuid4().hex
        queue = service.broker.subscribe(run_id) if wait > 0 else None
        try:
            run = await asyncio.to_thread(checked_submit, run_id)
            if isinstance(run, Response):
                return run
            if queue is None:
                return JSONResponse(run_out(run), 202)
            data = await service.wait_final(run_id, min(wait, 3600), queue)
        finally:
            if queue is not None:
                service.broker.unsubscribe(run_id, queue)
        data = data or as_json(run)
        return JSONResponse(run_out(data), 200 if data["status"] in FINAL else 202)

    @app.get("/api/runs")
    async def api_runs(notebook: str | None = None, status: str | None = None,
                       limit: int = 100) -> Response:
        if status and status not in STATUSES:
            return JSONResponse({"detail": f"status must be one of {', '.join(STATUSES)}"}, 422)
        runs = await asyncio.to_thread(store.list, notebook, status, limit)
        return JSONResponse([run_out(r) for r in runs])

    async def find(run_id: str) -> Run | None:
        return await asyncio.to_thread(store.get, run_id)

    def missing(run_id: str) -> Response:
        return JSONResponse({"detail": f"no run {run_id!r}"}, 404)

    @app.get("/api/runs/{run_id}")
    async def api_run(run_id: str) -> Response:
        run = await find(run_id)
        return JSONResponse(run_out(run)) if run else missing(run_id)

    @app.delete("/api/runs/{run_id}")
    async def api_cancel(run_id: str) -> Response:
        status = await asyncio.to_thread(service.cancel, run_id)
        if status is None:
            return missing(run_id)
        if status in ("completed", "failed"):
            return JSONResponse({"detail": f"the run is {status} already", "status": status}, 409)
        return JSONResponse({"id": run_id, "status": status}, 202)

    def read_output(run: Run) -> str | None:
        from .. import storage

        if not run.output:
            return None
        try:
            return storage.read_text(run.output, service.storage_options)
        except ParamillError:
            return None

    @app.get("/api/runs/{run_id}/notebook")
    async def api_notebook(run_id: str) -> Response:
        run = await find(run_id)
        text = run and await asyncio.to_thread(read_output, run)
        if not text:
            return missing(run_id)
        name = os.path.splitext(os.path.basename(run.notebook))[0]
        return Response(text, media_type="application/x-ipynb+json", headers={
            "Content-Disposition": f'attachment; filename="{name}-{run.id[:8]}.ipynb"'})

    def report_html(run: Run) -> str | None:
        from .. import storage
        from ..notebook import loads
        from ..report import to_html

        if not run.output:
            return None
        cached = run.output[: -len(".ipynb")] + ".html"
        if run.status in FINAL:
            try:
                return storage.read_text(cached, service.storage_options)
            except ParamillError:
                pass
        text = read_output(run)
        if not text:
            return None
        html = to_html(loads(text, run.output), title=run.notebook)
        if run.status in FINAL:
            storage.write_text(cached, html, service.storage_options)
        return html

    @app.get("/api/runs/{run_id}/report")
    async def api_report(run_id: str, download: bool = False) -> Response:
        run = await find(run_id)
        html = run and await asyncio.to_thread(report_html, run)
        if not html:
            return missing(run_id)
        headers = {}
        if download:
            name = os.path.splitext(os.path.basename(run.notebook))[0]
            headers["Content-Disposition"] = f'attachment; filename="{name}-{run.id[:8]}.html"'
        return HTMLResponse(html, headers=headers)

    @app.get("/api/runs/{run_id}/record")
    async def api_record(run_id: str) -> Response:
        run = await find(run_id)
        if run is None:
            return missing(run_id)
        return JSONResponse(as_json(run), headers={
            "Content-Disposition": f'attachment; filename="run-{run.id[:8]}.json"'})

    @app.get("/api/runs/{run_id}/events")
    async def api_events(run_id: str) -> Response:
        run = await find(run_id)
        if run is None:
            return missing(run_id)

        async def stream() -> Any:
            queue = service.broker.subscribe(run_id)
            try:
                current = await find(run_id)
                yield _sse({"event": "status", "status": current.status,
                            "cells_done": current.cells_done,
                            "cells_total": current.cells_total})
                last = current.status
                latest = service.latest.get(run_id)
                if latest is not None and last not in FINAL:  # what ran before the page opened
                    yield _sse({"event": "progress", **latest})
                while last not in FINAL:
                    try:
                        event = await asyncio.wait_for(queue.get(), 1.0)
                    except asyncio.TimeoutError:  # a run another server executes
                        current = await find(run_id)
                        if current.status != last:
                            event = {"event": "status", "status": current.status}
                        else:
                            yield ": keep-alive\n\n"
                            continue
                    if event.get("event") == "status":
                        last = event["status"]
                    yield _sse(event)
            finally:
                service.broker.unsubscribe(run_id, queue)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    # -- pages ---------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse)
    async def page_index(request: Request) -> Response:
        found = await asyncio.to_thread(catalog.all)
        return templates.TemplateResponse(request, "index.html", {"notebooks": found})

    async def notebook_page(request: Request, name: str, values: dict | None = None,
                            errors: dict | None = None, status_code: int = 200) -> Response:
        served = await asyncio.to_thread(catalog.get, name)
        if served is None:
            return HTMLResponse("<h1>404</h1><p>No such notebook.</p>", 404)
        status = request.query_params.get("status") or None
        runs = await asyncio.to_thread(store.list, served.name, status, 200)
        return templates.TemplateResponse(request, "notebook.html", {
            "nb": served, "values": values or {}, "errors": errors or {}, "runs": runs,
            "status": status, "statuses": STATUSES, "quote": quote,
        }, status_code=status_code)

    @app.get("/notebooks/{name:path}", response_class=HTMLResponse)
    async def page_notebook(request: Request, name: str) -> Response:
        return await notebook_page(request, name)

    @app.post("/notebooks/{name:path}", response_class=HTMLResponse)
    async def page_submit(request: Request, name: str) -> Response:
        served = await asyncio.to_thread(catalog.get, name)
        if served is None:
            return HTMLResponse("<h1>404</h1><p>No such notebook.</p>", 404)
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        values, errors = form_values(served, form)
        if not errors:
            try:
                await asyncio.to_thread(catalog.check, served, values)
            except ParameterError as exc:
                field = _parameter_named(exc.message, list(served.parameters)) or "_form"
                errors[field] = exc.message
        if errors:
            return await notebook_page(request, name, form, errors, 422)
        try:
            run = await asyncio.to_thread(service.submit, served.name, values, who(request))
        except QueueFull as exc:
            return await notebook_page(request, name, form, {"_form": f"queue full: {exc}"}, 429)
        return RedirectResponse(f"/runs/{run.id}", 303)

    @app.get("/runs/{run_id}", response_class=HTMLResponse)
    async def page_run(request: Request, run_id: str) -> Response:
        run = await find(run_id)
        if run is None:
            return HTMLResponse("<h1>404</h1><p>No such run.</p>", 404)
        return templates.TemplateResponse(request, "run.html", {
            "run": run, "data": as_json(run), "final": run.status in FINAL,
            "records": charts.record_cells(run.records or {})})

    @app.get("/compare", response_class=HTMLResponse)
    async def page_compare(request: Request) -> Response:
        ids = request.query_params.getlist("id")
        runs = await asyncio.to_thread(store.list, None, None, 1000, ids) if ids else []
        runs.sort(key=lambda r: r.seq)
        return templates.TemplateResponse(request, "compare.html", {
            "runs": runs, **charts.comparison(runs)})

    @app.get("/favicon.ico")
    async def favicon() -> Response:
        return PlainTextResponse("", 204)

    return app


def _sse(event: dict[str, Any]) -> str:
    return f"event: {event.get('event', 'message')}\ndata: {json.dumps(event, default=str)}\n\n"
