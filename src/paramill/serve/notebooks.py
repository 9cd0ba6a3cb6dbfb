"""The served folder: which notebooks there are, what they declare, and checking what a
client submits against that before any kernel starts.

Notebook names are paths relative to the served folder, with ``/``; a name that leaves it
(``..``, absolute, a URL) is unknown. A notebook is read again only when its file changed.
"""

from __future__ import annotations

import ast
import os
import threading
from dataclasses import dataclass, field
from typing import Any

from ..errors import ParameterError, ParamillError

SKIP_DIRS = {".paramill", ".ipynb_checkpoints", "__pycache__", ".git", "node_modules"}


@dataclass
class Served:
    name: str
    path: str
    mtime: float
    nb: Any  # NotebookNode as read (parameters not injected)
    parameters: dict[str, dict[str, Any]]  # name -> {type, default, help, input, choices}
    declared: bool  # has an inspectable parameters cell
    secrets: list[str] = field(default_factory=list)  # declared names the server fills
    timeout: float | None = None  # per-notebook override (metadata paramill.timeout)
    title: str = ""
    error: str | None = None
    declared_list: list[Any] = field(default_factory=list)


def _input_kind(type_name: str, default: str) -> tuple[str, list[Any] | None]:
    """The form input for a declared type: number, integer, checkbox, date, choice, yaml, text."""
    t = type_name.replace(" ", "")
    if t.startswith(("Literal[", "typing.Literal[")):
        try:
            inner = ast.parse(t[t.index("[") :], mode="eval").body
            values = ast.literal_eval(inner)
            return "choice", list(values) if isinstance(values, (list, tuple)) else [values]
        except (ValueError, SyntaxError):
            return "text", None
    base = t.split("[")[0].lower()
    if base in ("int",):
        return "integer", None
    if base in ("float", "int|float", "float|int"):
        return "number", None
    if base == "bool":
        return "checkbox", None
    if base in ("date", "datetime.date"):
        return "date", None
    if base in ("list", "dict", "tuple", "set", "typing.list", "typing.dict"):
        return "yaml", None
    if base in ("none", ""):  # no annotation: from the default's literal
        try:
            value = ast.literal_eval(default)
        except (ValueError, SyntaxError):
            return "text", None
        if isinstance(value, bool):
            return "checkbox", None
        if isinstance(value, int):
            return "integer", None
        if isinstance(value, float):
            return "number", None
        if isinstance(value, (list, dict, tuple)):
            return "yaml", None
    return "text", None


class Catalog:
    def __init__(self, root: str, secret_names: list[str] | None = None) -> None:
        self.root = os.path.realpath(root)
        self.secret_names = set(secret_names or [])
        self._cache: dict[str, Served] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        found = []
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
            for file in sorted(files):
                path = os.path.join(folder, file)
                if _is_notebook_file(path):
                    found.append(os.path.relpath(path, self.root).replace(os.sep, "/"))
        return found

    def resolve(self, name: str) -> str | None:
        """The file for a notebook name, or None when the name leaves the folder or is absent."""
        if not name or "://" in name or name.startswith(("/", "\\")) or "\x00" in name:
            return None
        parts = name.split("/")
        if any(p in ("", ".", "..") or p.startswith(".") for p in parts):
            return None
        path = os.path.realpath(os.path.join(self.root, *parts))
        if not path.startswith(self.root + os.sep) or not os.path.isfile(path):
            return None
        return path

    def get(self, name: str) -> Served | None:
        path = self.resolve(name)
        if path is None or not _is_notebook_file(path):
            return None
        mtime = os.stat(path).st_mtime
        with self._lock:
            cached = self._cache.get(name)
            if cached is not None and cached.mtime == mtime:
                return cached
        served = self._load(name, path, mtime)
        with self._lock:
            self._cache[name] = served
        return served

    def all(self) -> list[Served]:
        return [s for s in (self.get(n) for n in self.names()) if s is not None]

    def _load(self, name: str, path: str, mtime: float) -> Served:
        from .._run.prepare import declared_parameters
        from ..nbio import read_notebook_source

        try:
            nb = read_notebook_source(path)
        except ParamillError as exc:
            return Served(name, path, mtime, None, {}, False, error=exc.message)
        params: dict[str, dict[str, Any]] = {}
        secrets: list[str] = []
        try:
            declared = declared_parameters(nb)
        except (NotImplementedError, ParamillError):
            declared = None
        for p in declared or []:
            if p.name in self.secret_names:
                secrets.append(p.name)  # filled by the server: never shown, never accepted
                continue
            kind, choices = _input_kind(p.type_name, p.default)
            params[p.name] = {
                "type": p.type_name,
                "default": p.default,
                "help": p.help,
                "input": kind,
                "choices": choices,
            }
        meta = nb.metadata.get("paramill", {}) if hasattr(nb, "metadata") else {}
        timeout = meta.get("timeout") if isinstance(meta, dict) else None
        title = ""
        for cell in nb.cells:
            if cell.cell_type == "markdown" and cell.source.lstrip().startswith("#"):
                title = cell.source.lstrip().splitlines()[0].lstrip("#").strip()
                break
        return Served(
            name,
            path,
            mtime,
            nb,
            params,
            declared is not None,
            secrets=secrets,
            timeout=float(timeout) if isinstance(timeout, (int, float)) else None,
            title=title,
            declared_list=list(declared or []),
        )

    def check(self, served: Served, parameters: Any) -> dict[str, Any]:
        """Submitted values checked with ``--strict`` rules (no kernel); ParameterError names
        the parameter. A notebook without an inspectable parameters cell accepts none."""
        from .._run.prepare import translator_for
        from ..parameters import check_parameters

        if not isinstance(parameters, dict):
            raise ParameterError("parameters must be a JSON object")
        for name in parameters:
            if not isinstance(name, str) or name in served.secrets:
                raise ParameterError(f"unknown parameter {name!r}")
        if not parameters:
            return {}
        if not served.declared:
            raise ParameterError(
                f"unknown parameter {next(iter(parameters))!r}: the notebook declares no "
                "parameters that can be inspected"
            )
        check_parameters(served.declared_list, parameters, strict=True)
        # values the notebook language can represent
        translator_for(served.nb, None, None).codify(parameters, "Parameters")
        return parameters


def form_values(served: Served, form: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Form fields (strings) to typed values by each parameter's input kind; (values, errors).
    Fields left at their default are not sent, so the notebook's own default applies."""
    import yaml

    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, spec in served.parameters.items():
        kind = spec["input"]
        if kind == "checkbox":
            value: Any = form.get(name) in ("on", "true", "1", "True")
            try:
                default = ast.literal_eval(spec["default"])
            except (ValueError, SyntaxError):
                default = None
            if value != default:
                values[name] = value
            continue
        raw = form.get(name)
        if raw is None or raw.strip() == "" or raw == _default_text(spec):
            continue
        raw = raw.strip()
        try:
            if kind == "integer":
                values[name] = int(raw)
            elif kind == "number":
                values[name] = float(raw)
            elif kind == "yaml":
                values[name] = yaml.safe_load(raw)
            elif kind == "choice":
                match = [c for c in spec["choices"] or [] if str(c) == raw]
                if not match:
                    raise ValueError(f"not one of {spec['choices']}")
                values[name] = match[0]
            else:
                values[name] = raw
        except (ValueError, yaml.YAMLError) as exc:
            errors[name] = f"{kind} expected: {exc}".splitlines()[0]
    return values, errors


def _default_text(spec: dict[str, Any]) -> str:
    try:
        value = ast.literal_eval(spec["default"])
    except (ValueError, SyntaxError):
        return spec["default"]
    return value if isinstance(value, str) else repr(value)


def default_for_input(spec: dict[str, Any]) -> Any:
    """The value a form shows for a parameter's default."""
    try:
        value = ast.literal_eval(spec["default"])
    except (ValueError, SyntaxError):
        return spec["default"]
    if spec["input"] == "yaml":
        import yaml

        return yaml.safe_dump(value, default_flow_style=True).strip()
    return value


def _is_notebook_file(path: str) -> bool:
    """.ipynb, R Markdown/Quarto/MyST, or a script with cell markers (jupytext percent)."""
    from ..textnb import TEXT_EXTENSIONS

    ext = os.path.splitext(path)[1]
    if ext in (".ipynb", ".Rmd", ".qmd", ".myst"):
        return True
    return ext in TEXT_EXTENSIONS and ext != ".md" and _is_percent_script(path)


def _is_percent_script(path: str) -> bool:
    try:
        with open(path, encoding="utf-8") as f:
            head = f.read(4096)
    except (OSError, UnicodeDecodeError):
        return False
    return "%%" in head  # a script with cell markers (jupytext percent format)
