"""What a notebook's parameters cell declares, and checking supplied values against it.

Python cells are parsed with ``ast`` (annotations, strings holding ``=`` or ``#``, multi-line
values and comments as help all work); other languages provide ``Translator.inspect``.
"""

from __future__ import annotations

import ast
import io
import logging
import tokenize
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ParameterError
from ..magics import blank_magics

logger = logging.getLogger("paramill")

_NO_VALUE = object()


@dataclass
class Parameter:
    """A parameter declared in a notebook's parameters cell."""

    name: str
    type_name: str = "None"  # annotation or type comment text; "None" when unknown (papermill)
    default: str = ""  # the default's source text
    help: str = ""
    annotation: ast.expr | None = field(default=None, repr=False, compare=False)
    default_value: Any = field(default=_NO_VALUE, repr=False, compare=False)

    def as_papermill(self) -> dict[str, str]:
        return {
            "name": self.name,
            "inferred_type_name": self.type_name,
            "default": self.default,
            "help": self.help,
        }


def _comments_by_line(source: str) -> dict[int, str]:
    comments: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                comments[tok.start[0]] = tok.string[1:].strip()
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return comments


#: a cell with more unreadable lines than this is not a parameters cell worth recovering
MAX_UNPARSABLE_LINES = 100


def _parse_what_parses(source: str) -> tuple[ast.Module, str] | None:
    """The cell's syntax tree and the text it was parsed from, without the lines that are not
    Python: IPython's magics, shell escapes and help requests are blanked silently (``magics``);
    a line that breaks parsing (``files = !ls``, a stray ``= 2``) is blanked with papermill's
    warning and parsing retried, so every statement that can be read is kept. None when nothing
    can be recovered."""
    original = source.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    lines = blank_magics(original)

    def drop(number: int) -> None:
        logger.warning("Unable to parse line %s '%s'.", number, original[number - 1])
        lines[number - 1] = ""

    for number, line in enumerate(lines, 1):
        if "\0" in line:  # the parser refuses the whole text, naming no line
            drop(number)
    for _ in range(MAX_UNPARSABLE_LINES + 1):
        text = "\n".join(lines)
        try:
            return ast.parse(text), text
        except (MemoryError, RecursionError):
            logger.warning("Unable to parse the parameters cell: nested too deeply.")
            return None
        except SyntaxError as exc:
            number = min(exc.lineno or len(lines), len(lines))
            line = lines[number - 1]
            if exc.msg == "unexpected indent" and line[:1].isspace():
                lines[number - 1] = line.lstrip()  # papermill reads indented lines too
                continue
            while number > 1 and not lines[number - 1].strip():
                number -= 1  # "never closed" and EOF errors can point past the culprit
            if not lines[number - 1].strip():
                logger.warning("Unable to parse the parameters cell (%s).", exc.msg)
                return None
            drop(number)
    logger.warning(
        "Unable to parse the parameters cell: more than %s lines are not Python.",
        MAX_UNPARSABLE_LINES,
    )
    return None


def _default_text(text: str, value: ast.expr) -> str:
    """The default as papermill shows it: a value written over several lines is joined into
    one, each line without its comment and surrounding space (``['Hello','World']``)."""
    segment = ast.get_source_segment(text, value) or ""
    if "\n" not in segment:
        return segment
    rows = segment.split("\n")
    joined, end = "", None
    skip = (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.ENDMARKER)
    try:
        for tok in tokenize.generate_tokens(io.StringIO(segment).readline):
            if tok.type in skip or tok.type in (tokenize.INDENT, tokenize.DEDENT):
                continue
            if end is not None:
                if tok.start[0] == end[0]:
                    joined += rows[end[0] - 1][end[1] : tok.start[1]]
                elif (joined[-1:].isalnum() or joined[-1:] == "_") and (
                    tok.string[:1].isalnum() or tok.string[:1] == "_"
                ):
                    joined += " "  # two words from two lines stay two words
            joined += tok.string
            end = tok.end
    except (tokenize.TokenError, SyntaxError):
        joined = ""
    return joined if joined and "\n" not in joined else ast.unparse(value)


def inspect_python(source: str) -> list[Parameter]:
    parsed = _parse_what_parses(source)
    if parsed is None:
        return []
    tree, text = parsed
    comments = _comments_by_line(text)
    found: list[Parameter] = []
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = [t for t in node.targets if isinstance(t, ast.Name)]
            annotation, value = None, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            targets, annotation, value = [node.target], node.annotation, node.value
        else:
            continue
        if isinstance(value, ast.Compare):
            # a flag computed from other values (`d = a == 3`), not a default a user sets;
            # papermill never lists one either (it cannot read a line with two "=")
            continue
        # help is the statement's trailing comment, as in papermill (a comment line above
        # it is not: papermill's own example shows none for "# Interesting c variable")
        comment = comments.get(node.end_lineno or node.lineno) or comments.get(node.lineno, "")
        type_name, help_text = "None", comment
        if comment.startswith("type:"):
            parts = comment[len("type:") :].strip().split(None, 1)
            type_name = parts[0] if parts else "None"
            help_text = parts[1] if len(parts) > 1 else ""
        if annotation is not None:
            if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
                type_name = annotation.value
                try:
                    annotation = ast.parse(annotation.value, mode="eval").body
                except SyntaxError:
                    annotation = None
            else:
                type_name = ast.get_source_segment(text, annotation) or ast.unparse(annotation)
        default_text, default_value = "", _NO_VALUE
        if value is not None:
            default_text = _default_text(text, value)
            try:
                default_value = ast.literal_eval(value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                default_value = _NO_VALUE
        for target in targets:
            found.append(
                Parameter(target.id, type_name, default_text, help_text, annotation, default_value)
            )
    return found


# -- checking supplied values ----------------------------------------------------------------------
_SIMPLE = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "complex": lambda v: isinstance(v, (int, float, complex)) and not isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "list": lambda v: isinstance(v, (list, tuple)),
    "List": lambda v: isinstance(v, (list, tuple)),
    "Sequence": lambda v: isinstance(v, (list, tuple)),
    "tuple": lambda v: isinstance(v, (list, tuple)),
    "Tuple": lambda v: isinstance(v, (list, tuple)),
    "dict": lambda v: isinstance(v, Mapping),
    "Dict": lambda v: isinstance(v, Mapping),
    "Mapping": lambda v: isinstance(v, Mapping),
    "None": lambda v: v is None,
    "NoneType": lambda v: v is None,
}


def _annotation_accepts(annotation: ast.expr, value: Any) -> bool | None:
    """True/False when the annotation decides; None when it is not understood (accept)."""
    if isinstance(annotation, ast.Constant) and annotation.value is None:
        return value is None
    if isinstance(annotation, ast.Name):
        check = _SIMPLE.get(annotation.id)
        return check(value) if check else None
    if isinstance(annotation, ast.Attribute):  # typing.List etc.
        check = _SIMPLE.get(annotation.attr)
        return check(value) if check else None
    if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
        return _any_accepts([annotation.left, annotation.right], value)
    if isinstance(annotation, ast.Subscript):
        head = annotation.value
        head_name = head.id if isinstance(head, ast.Name) else getattr(head, "attr", "")
        args = (
            annotation.slice.elts if isinstance(annotation.slice, ast.Tuple) else [annotation.slice]
        )
        if head_name == "Optional":
            return value is None or _any_accepts(args, value)
        if head_name == "Union":
            return _any_accepts(args, value)
        if head_name == "Literal":
            try:
                choices = [ast.literal_eval(a) for a in args]
            except ValueError:
                return None
            return any(value == c and type(value) is type(c) for c in choices)
        check = _SIMPLE.get(head_name)
        return check(value) if check else None
    return None


def _any_accepts(options: list[ast.expr], value: Any) -> bool | None:
    results = [_annotation_accepts(a, value) for a in options]
    if any(r is True for r in results):
        return True
    if any(r is None for r in results):
        return None
    return False


def _default_accepts(default: Any, value: Any) -> bool:
    if default is None or default is _NO_VALUE:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    if isinstance(default, dict):
        return isinstance(value, Mapping)
    return True


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) < 60 else text[:57] + '...'}"


def check_parameters(
    declared: list[Parameter] | None, supplied: Mapping[str, Any], *, strict: bool = False
) -> None:
    """Warn (or, when strict, fail) on unknown names; when strict, also on contradicting types.

    ``declared`` is None when the notebook has no parameters cell or its language has no
    introspection: every supplied name is then unknown, as in papermill.
    """
    by_name = {p.name: p for p in declared or []}
    unknown = [name for name in supplied if name not in by_name]
    if strict and unknown:
        if declared is None:
            raise ParameterError(
                "strict mode: cannot check parameters: the notebook has no parameters cell "
                "that can be inspected"
            )
        raise ParameterError(
            f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"the notebook declares: {', '.join(by_name) or 'nothing'}"
        )
    for name in unknown:
        logger.warning("Passed unknown parameter: %s", name)
    if not strict:
        return
    for name, value in supplied.items():
        param = by_name[name]
        accepted = None
        expected = param.type_name
        if param.annotation is not None:
            accepted = _annotation_accepts(param.annotation, value)
        if accepted is None and param.type_name == "None":
            accepted = _default_accepts(param.default_value, value)
            expected = type(param.default_value).__name__
        if accepted is False:
            raise ParameterError(
                f"parameter {name!r}: expected {expected} (declared default {param.default}), "
                f"got {_describe(value)}"
            )
