"""Preparing the notebook before any kernel runs it: its kernel and language, parameters
checked against its declarations and injected, report mode, papermill's metadata."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .. import notebook as nbops
from .. import storage
from ..errors import KernelError
from ..kernel.lifecycle import kernelspec
from ..parameters import Translator, check_parameters, get_translator, json_safe
from ..secrets import redacted, secret_source

if TYPE_CHECKING:
    from nbformat import NotebookNode

logger = logging.getLogger("paramill")


def notebook_kernel_name(nb: NotebookNode, override: str | None = None) -> str:
    name = override or nb.metadata.get("kernelspec", {}).get("name")
    if not name:
        raise KernelError(
            "the notebook names no kernel (metadata.kernelspec.name is missing); pass -k KERNEL"
        )
    return name


def notebook_language(nb: NotebookNode, override: str | None = None) -> str:
    language = (
        override
        or nb.metadata.get("language_info", {}).get("name")
        or nb.metadata.get("kernelspec", {}).get("language")
    )
    if not language:
        raise KernelError(
            "the notebook names no language (metadata.language_info.name and "
            "kernelspec.language are missing); pass -l LANGUAGE"
        )
    return language


def rewrite_kernelspec(nb: NotebookNode, kernel_name: str) -> None:
    """With -k, the output names the kernel it actually ran on (papermill #856)."""
    spec = kernelspec(kernel_name)
    nb.metadata["kernelspec"] = {
        "name": kernel_name,
        "display_name": spec.display_name,
        "language": spec.language,
    }


def translator_for(nb: NotebookNode, kernel_name: str | None, language: str | None) -> Translator:
    """The translator for the kernel (-k or kernelspec.name), else the notebook's language."""
    return get_translator(
        kernel_name or nb.metadata.get("kernelspec", {}).get("name"),
        notebook_language(nb, language),
    )


def parameterize(
    nb: NotebookNode,
    parameters: Mapping[str, Any],
    *,
    kernel_name: str | None = None,
    language: str | None = None,
    strict: bool = False,
    report_mode: bool = False,
    comment: str = "Parameters",
    secrets: Mapping[str, str] | None = None,
) -> NotebookNode:
    """Check ``parameters`` against the notebook's declarations and inject them (no kernel).

    ``secrets`` are bound from the kernel's environment; only their names reach the notebook.
    """
    translator = translator_for(nb, kernel_name, language)
    try:
        declared = declared_parameters(nb, language=language, translator=translator)
    except NotImplementedError:
        declared = None
    hidden = redacted(secrets or {})
    check_parameters(declared, {**parameters, **hidden}, strict=strict)
    source = translator.codify(parameters, comment) + secret_source(translator, list(hidden))
    stamped = {**json_safe(dict(parameters)), **hidden}
    return nbops.inject_parameters(nb, source, stamped, report_mode)


def declared_parameters(
    nb: NotebookNode,
    *,
    kernel_name: str | None = None,
    language: str | None = None,
    translator: Translator | None = None,
) -> list | None:
    """Declared parameters, or None when there is no parameters cell.

    When the language has no introspection, logs papermill's warning (naming the notebook's
    language, as papermill does) and raises NotImplementedError.
    """
    index = nbops.find_tagged(nb, nbops.PARAMETERS_TAG)
    if index is None:
        return None
    translator = translator or translator_for(nb, kernel_name, language)
    try:
        return translator.inspect(nb.cells[index].source)
    except NotImplementedError:
        logger.warning(
            "Translator for '%s' language does not support parameter introspection.",
            notebook_language(nb, language),
        )
        raise


def prepare_notebook(
    nb: NotebookNode,
    parameters: Mapping[str, Any],
    *,
    input_path: Any,
    output_path: Any,
    kernel_name: str | None,
    language: str | None,
    strict: bool,
    report_mode: bool,
    secrets: Mapping[str, str],
) -> NotebookNode:
    """The notebook as the kernel will run it: placeholders, parameters (and secret names)
    injected, input/output recorded, report mode applied, old error markers removed."""
    nb = nbops.add_placeholders(nb)
    if parameters or secrets:
        nb = parameterize(
            nb,
            parameters,
            kernel_name=kernel_name,
            language=language,
            strict=strict,
            report_mode=report_mode,
            secrets=secrets,
        )
    meta = nb.metadata.papermill
    meta["input_path"] = storage.display_url(input_path) if isinstance(input_path, str) else None
    meta["output_path"] = storage.display_url(output_path)
    if report_mode:
        nb = nbops.apply_report_mode(nb)
    return nbops.remove_error_markers(nb)
