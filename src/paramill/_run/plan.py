"""The first step of a run: from what the caller gave to what the run will do (parameters
resolved, paths filled and checked, secrets checked, the kernel's environment computed once)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import secrets as secrets_mod
from .. import storage
from ..errors import InputError
from ..parameters import resolve
from ..report import require_nbconvert
from .options import RunOptions
from .paths import has_fields, path_parameters, refuse_overwriting_input, template_path

logger = logging.getLogger("paramill")


@dataclass
class RunPlan:
    input_path: Any
    output_path: Any
    parameters: dict[str, Any]
    secrets: dict[str, str] = field(default_factory=dict)
    html_output: str | None = None
    cwd: str | None = None
    #: variables added to the kernel's environment (the caller's and the secrets')
    kernel_env: dict[str, str] = field(default_factory=dict)

    @property
    def hidden_values(self) -> list[str]:
        return list(self.secrets.values())


def plan_run(
    input_path: Any, output_path: Any, parameters: Mapping[str, Any] | None, opts: RunOptions
) -> RunPlan:
    """Resolve parameters (values, files, YAML), fill and check paths, check secrets."""
    input_path = os.fspath(input_path) if isinstance(input_path, os.PathLike) else input_path
    output_path = os.fspath(output_path) if isinstance(output_path, os.PathLike) else output_path
    files, yamls = opts.parameters_file, opts.parameters_yaml
    params = resolve(
        parameters=parameters,
        files=([files] if isinstance(files, (str, os.PathLike)) else files) or (),
        yamls=([yamls] if isinstance(yamls, str) else yamls) or (),
        storage_options=opts.storage_options,
    )
    path_params = path_parameters(params)
    in_place = not (has_fields(input_path) or has_fields(output_path))  # papermill's in-place run
    fill = {"allow_path_values": opts.allow_path_values}
    input_path = template_path(input_path, path_params, **fill)
    output_path = template_path(output_path, path_params, **fill)
    if not in_place:
        refuse_overwriting_input(input_path, output_path, "the output")
    secrets = secrets_mod.check_secrets(opts.secrets or {}, params, opts.allow_short_secrets)
    html_output = None
    if opts.html_output is not None:
        html_output = template_path(os.fspath(opts.html_output), path_params, **fill)
        refuse_overwriting_input(input_path, html_output, "the HTML report")
        require_nbconvert()
    plan = RunPlan(input_path, output_path, params, secrets, html_output)
    plan.kernel_env = {**(opts.kernel_env or {}), **secrets_mod.kernel_env(secrets)}
    logger.info("Input Notebook:  %s", _pretty(input_path))
    logger.info("Output Notebook: %s", _pretty(output_path))
    if opts.cwd is not None:
        plan.cwd = os.fspath(opts.cwd)
        if not os.path.isdir(plan.cwd):
            raise InputError(f"--cwd {plan.cwd}: no such directory")
        logger.info("Working directory: %s", plan.cwd)
    return plan


def _pretty(path: Any) -> str:
    if path is None:
        return "Notebook will not be saved"
    if isinstance(path, Mapping):
        return "NotebookNode object"
    return str(storage.display_url(path))[:200]
