"""The HTML pages: the notebook list, a notebook's form and runs, a run, a comparison."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from ..errors import ParameterError
from . import charts
from .common import find, parameter_named, service_of, who
from .notebooks import form_values
from .service import QueueFull
from .store import FINAL, STATUSES, as_json

router = APIRouter()


def _render(request: Request, name: str, context: dict, status_code: int = 200) -> Response:
    return request.app.state.templates.TemplateResponse(request, name, context,
                                                        status_code=status_code)


@router.get("/", response_class=HTMLResponse)
async def page_index(request: Request) -> Response:
    found = await asyncio.to_thread(service_of(request).catalog.all)
    return _render(request, "index.html", {"notebooks": found})


async def notebook_page(request: Request, name: str, values: dict | None = None,
                        errors: dict | None = None, status_code: int = 200) -> Response:
    service = service_of(request)
    served = await asyncio.to_thread(service.catalog.get, name)
    if served is None:
        return HTMLResponse("<h1>404</h1><p>No such notebook.</p>", 404)
    status = request.query_params.get("status") or None
    runs = await asyncio.to_thread(service.store.list, served.name, status, 200)
    return _render(request, "notebook.html", {
        "nb": served, "values": values or {}, "errors": errors or {}, "runs": runs,
        "status": status, "statuses": STATUSES, "quote": quote,
    }, status_code=status_code)


@router.get("/notebooks/{name:path}", response_class=HTMLResponse)
async def page_notebook(request: Request, name: str) -> Response:
    return await notebook_page(request, name)


@router.post("/notebooks/{name:path}", response_class=HTMLResponse)
async def page_submit(request: Request, name: str) -> Response:
    service = service_of(request)
    catalog = service.catalog
    served = await asyncio.to_thread(catalog.get, name)
    if served is None:
        return HTMLResponse("<h1>404</h1><p>No such notebook.</p>", 404)
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    values, errors = form_values(served, form)
    if not errors:
        try:
            await asyncio.to_thread(catalog.check, served, values)
        except ParameterError as exc:
            field = parameter_named(exc.message, list(served.parameters)) or "_form"
            errors[field] = exc.message
    if errors:
        return await notebook_page(request, name, form, errors, 422)
    try:
        run = await asyncio.to_thread(service.submit, served.name, values, who(request))
    except QueueFull as exc:
        return await notebook_page(request, name, form, {"_form": f"queue full: {exc}"}, 429)
    return RedirectResponse(f"/runs/{run.id}", 303)


@router.get("/runs/{run_id}", response_class=HTMLResponse)
async def page_run(request: Request, run_id: str) -> Response:
    run = await find(request, run_id)
    if run is None:
        return HTMLResponse("<h1>404</h1><p>No such run.</p>", 404)
    return _render(request, "run.html", {
        "run": run, "data": as_json(run), "final": run.status in FINAL,
        "records": charts.record_cells(run.records or {})})


@router.get("/compare", response_class=HTMLResponse)
async def page_compare(request: Request) -> Response:
    ids = request.query_params.getlist("id")
    store = service_of(request).store
    runs = await asyncio.to_thread(store.list, None, None, 1000, ids) if ids else []
    runs.sort(key=lambda r: r.seq)
    return _render(request, "compare.html", {"runs": runs, **charts.comparison(runs)})


@router.get("/favicon.ico")
async def favicon() -> Response:
    return PlainTextResponse("", 204)
