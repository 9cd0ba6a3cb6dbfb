"""Records as table cells, and numeric records across runs as small inline SVG line charts
(no JavaScript, no chart library: a few dozen points per chart)."""

from __future__ import annotations

import html
import json
from typing import Any

from markupsafe import Markup


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def cell(value: Any) -> Markup:
    """One record value as HTML: images inline, numbers and text as they are, rest as JSON."""
    if isinstance(value, dict) and "base64" in value and "mimetype" in value:
        return Markup('<img class="record-image" alt="record" src="data:{};base64,{}">').format(
            value["mimetype"], value["base64"])
    if _is_number(value):
        return Markup('<span class="num">{}</span>').format(f"{value:.6g}")
    if isinstance(value, str):
        return Markup("{}").format(value)
    text = json.dumps(value, default=str)
    if len(text) > 400:
        text = text[:400] + "…"
    return Markup("<code>{}</code>").format(text)


def record_cells(records: dict[str, Any]) -> list[tuple[str, Markup]]:
    return [(name, cell(value)) for name, value in records.items()]


def line_chart(name: str, labels: list[str], values: list[float | None],
               width: int = 360, height: int = 160) -> Markup:
    """An SVG line chart of one record across runs (x: runs in order, y: value)."""
    pad_l, pad_r, pad_t, pad_b = 48, 10, 22, 22
    points = [(i, v) for i, v in enumerate(values) if v is not None]
    if not points:
        return Markup("")
    lo = min(v for _, v in points)
    hi = max(v for _, v in points)
    if hi == lo:
        lo, hi = lo - 1, hi + 1
    n = max(1, len(values) - 1)

    def x(i: int) -> float:
        return pad_l + (width - pad_l - pad_r) * (i / n if len(values) > 1 else 0.5)

    def y(v: float) -> float:
        return pad_t + (height - pad_t - pad_b) * (1 - (v - lo) / (hi - lo))

    path = " ".join(f"{'M' if k == 0 else 'L'}{x(i):.1f},{y(v):.1f}"
                    for k, (i, v) in enumerate(points))
    parts = [
        f'<svg class="chart" role="img" aria-label="{html.escape(name)} across runs" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f'<text x="{pad_l}" y="14" class="chart-title">{html.escape(name)}</text>',
        f'<line x1="{pad_l}" y1="{height - pad_b}" x2="{width - pad_r}" y2="{height - pad_b}" '
        'class="axis"/>',
        f'<line x1="{pad_l}" y1="{pad_t}" x2="{pad_l}" y2="{height - pad_b}" class="axis"/>',
        f'<text x="{pad_l - 4}" y="{y(hi) + 4:.1f}" class="tick" text-anchor="end">{hi:.4g}</text>',
        f'<text x="{pad_l - 4}" y="{y(lo) + 4:.1f}" class="tick" text-anchor="end">{lo:.4g}</text>',
        f'<path d="{path}" class="line"/>',
    ]
    for i, v in points:
        parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" class="dot">'
                     f"<title>{html.escape(labels[i])}: {v:.6g}</title></circle>")
    for i, label in enumerate(labels):
        parts.append(f'<text x="{x(i):.1f}" y="{height - 6}" class="tick" '
                     f'text-anchor="middle">{html.escape(label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def comparison(runs: list[Any]) -> dict[str, Any]:
    """Records side by side (one column per run) and a chart per numeric record."""
    names: list[str] = []
    for run in runs:
        for name in (run.records or {}):
            if name not in names:
                names.append(name)
    params: list[str] = []
    for run in runs:
        for name in (run.parameters or {}):
            if name not in params:
                params.append(name)
    labels = [f"#{i + 1}" for i in range(len(runs))]
    rows = [(name, [cell((r.records or {}).get(name)) if name in (r.records or {}) else
                    Markup("") for r in runs]) for name in names]
    plots = []
    for name in names:
        values = [(r.records or {}).get(name) for r in runs]
        if any(_is_number(v) for v in values):
            numeric = [float(v) if _is_number(v) else None for v in values]
            plots.append(line_chart(name, labels, numeric))
    return {"labels": labels, "record_rows": rows, "param_names": params, "plots": plots}
