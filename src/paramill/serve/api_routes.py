"""The JSON API under /api: notebooks, runs, their outputs and a server-sent event stream."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from ..errors import ParameterError, ParamillError
from .common import body_json, find, missing, parameter_named, run_out, service_of, who
from .service import QueueFull, Service
from .store import FINAL, STATUSES, Run, as_json

router = APIRouter()


@router.get("/api/notebooks")
async def api_notebooks(request: Request) -> list[dict[str, Any]]:
    found = await asyncio.to_thread(service_of(request).catalog.all)
    return [
        {"name": s.name, "title": s.title,
         "parameters": {k: {"type": v["type"], "default": v["default"], "help": v["help"]}
                        for k, v in s.parameters.items()}}
        for s in found
    ]


def _checked_submit(service: Service, notebook: str, params: Any, user: str,
                    run_id: str) -> Response | Run:
    """One thread hop: find the notebook, check the values, queue the run."""
    catalog = service.catalog
    served = catalog.get(notebook)
    if served is None or served.nb is None:
        return JSONResponse({"detail": f"no notebook {notebook!r}"}, 404)
    try:
        catalog.check(served, params)
    except ParameterError as exc:
        names = [*served.parameters, *(params if isinstance(params, dict) else [])]
        return JSONResponse({"detail": exc.message,
                             "parameter": parameter_named(exc.message, names)}, 422)
    try:
        return service.submit(served.name, params, user, run_id)
    except QueueFull as exc:
        return JSONResponse({"detail": f"queue full: {exc}"}, 429)


@router.post("/api/runs", status_code=202)
async def api_submit(request: Request, wait: float = 0) -> Response:
    service = service_of(request)
    body = await body_json(request)
    if isinstance(body, Response):
        return body
    if not isinstance(body, dict) or not isinstance(body.get("notebook"), str):
        return JSONResponse({"detail": "body must be {\"notebook\": NAME, \"parameters\": "
                             "{...}}"}, 422)
    params = body.get("parameters") or {}
    run_id = uuid.uuid4().hex
    queue = service.broker.subscribe(run_id, progress=False) if wait > 0 else None
    try:
        run = await asyncio.to_thread(_checked_submit, service, body["notebook"], params,
                                      who(request), run_id)
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


@router.get("/api/runs")
async def api_runs(request: Request, notebook: str | None = None, status: str | None = None,
                   limit: int = 100) -> Response:
    if status and status not in STATUSES:
        return JSONResponse({"detail": f"status must be one of {', '.join(STATUSES)}"}, 422)
    runs = await asyncio.to_thread(service_of(request).store.list, notebook, status, limit)
    return JSONResponse([run_out(r) for r in runs])


@router.get("/api/runs/{run_id}")
async def api_run(request: Request, run_id: str) -> Response:
    run = await find(request, run_id)
    return JSONResponse(run_out(run)) if run else missing(run_id)


@router.delete("/api/runs/{run_id}")
async def api_cancel(request: Request, run_id: str) -> Response:
    status = await asyncio.to_thread(service_of(request).cancel, run_id)
    if status is None:
        return missing(run_id)
    if status in ("completed", "failed"):
        return JSONResponse({"detail": f"the run is {status} already", "status": status}, 409)
    return JSONResponse({"id": run_id, "status": status}, 202)


def _read_output(service: Service, run: Run) -> str | None:
    from .. import storage

    if not run.output:
        return None
    try:
        return storage.read_text(run.output, service.storage_options)
    except ParamillError:
        return None


@router.get("/api/runs/{run_id}/notebook")
async def api_notebook(request: Request, run_id: str) -> Response:
    run = await find(request, run_id)
    text = run and await asyncio.to_thread(_read_output, service_of(request), run)
    if not text:
        return missing(run_id)
    name = os.path.splitext(os.path.basename(run.notebook))[0]
    return Response(text, media_type="application/x-ipynb+json", headers={
        "Content-Disposition": f'attachment; filename="{name}-{run.id[:8]}.ipynb"'})


def _report_html(service: Service, run: Run) -> str | None:
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
    text = _read_output(service, run)
    if not text:
        return None
    html = to_html(loads(text, run.output), title=run.notebook)
    if run.status in FINAL:
        storage.write_text(cached, html, service.storage_options)
    return html


@router.get("/api/runs/{run_id}/report")
async def api_report(request: Request, run_id: str, download: bool = False) -> Response:
    run = await find(request, run_id)
    html = run and await asyncio.to_thread(_report_html, service_of(request), run)
    if not html:
        return missing(run_id)
    headers = {}
    if download:
        name = os.path.splitext(os.path.basename(run.notebook))[0]
        headers["Content-Disposition"] = f'attachment; filename="{name}-{run.id[:8]}.html"'
    return HTMLResponse(html, headers=headers)


@router.get("/api/runs/{run_id}/record")
async def api_record(request: Request, run_id: str) -> Response:
    run = await find(request, run_id)
    if run is None:
        return missing(run_id)
    return JSONResponse(as_json(run), headers={
        "Content-Disposition": f'attachment; filename="run-{run.id[:8]}.json"'})


@router.get("/api/runs/{run_id}/events")
async def api_events(request: Request, run_id: str) -> Response:
    run = await find(request, run_id)
    if run is None:
        return missing(run_id)
    return StreamingResponse(_events(request, run_id), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache"})


async def _events(request: Request, run_id: str) -> Any:
    service = service_of(request)
    queue = service.broker.subscribe(run_id)
    try:
        current = await find(request, run_id)
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
                current = await find(request, run_id)
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


def _sse(event: dict[str, Any]) -> str:
    return f"event: {event.get('event', 'message')}\ndata: {json.dumps(event, default=str)}\n\n"
