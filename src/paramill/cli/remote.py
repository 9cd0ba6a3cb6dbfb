"""Options for kernels that are not local child processes (a Jupyter gateway, an existing
kernel) and for liveness, shared by ``paramill run`` and ``paramill sweep``.

``remote_kernel`` is the option block; ``remote_kwargs`` turns the values into ``run``/``sweep``
keyword arguments (``gateway=``, ``connection_info=``, ``kernel_liveness_timeout=``), raising
click's usage errors (exit 2) for values that cannot work.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import click

_OPTIONS = [
    click.option(
        "--gateway-url",
        envvar="JUPYTER_GATEWAY_URL",
        metavar="URL",
        help="Run the kernel on this Jupyter gateway (Kernel Gateway, Jupyter Server, "
        "Enterprise Gateway) [env JUPYTER_GATEWAY_URL].",
    ),
    click.option(
        "--gateway-token",
        envvar="JUPYTER_GATEWAY_AUTH_TOKEN",
        metavar="TOKEN",
        help="The gateway's token [env JUPYTER_GATEWAY_AUTH_TOKEN].",
    ),
    click.option(
        "--gateway-header",
        multiple=True,
        metavar="'NAME: VALUE'",
        help="An extra HTTP header for the gateway (repeatable) [env JUPYTER_GATEWAY_HEADERS, "
        "a JSON object].",
    ),
    click.option(
        "--gateway-validate-cert/--no-gateway-validate-cert",
        default=None,
        help="Check the gateway's TLS certificate [default: on; env "
        "JUPYTER_GATEWAY_VALIDATE_CERT].",
    ),
    click.option(
        "--gateway-ca-bundle",
        metavar="FILE",
        help="CA certificates to check the gateway with [env JUPYTER_GATEWAY_CA_CERTS].",
    ),
    click.option(
        "--connection-file",
        metavar="FILE",
        help="Run on an existing kernel (its kernel.json); paramill never shuts it down.",
    ),
    click.option(
        "--liveness-timeout",
        multiple=True,
        metavar="[KERNEL=]SECONDS",
        help="A kernel that answers nothing for this long is dead (exit 138); a remote "
        "kernel's silence alone counts. KERNEL=SECONDS sets it for one kernelspec "
        "[default: 10].",
    ),
]




def remote_kernel(command: Callable) -> Callable:
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def _liveness(values: tuple[str, ...]) -> tuple[float | None, dict[str, float]]:
    overall, per_kernel = None, {}
    for value in values:
        name, sep, seconds = value.rpartition("=")
        try:
            number = float(seconds)
            if number <= 0:
                raise ValueError
        except ValueError:
            raise click.BadParameter(
                f"{value!r}: expected SECONDS or KERNEL=SECONDS (a positive number)",
                param_hint="--liveness-timeout",
            ) from None
        if sep:
            per_kernel[name] = number
        else:
            overall = number
    return overall, per_kernel


def remote_kwargs(remote: Mapping[str, Any]) -> dict[str, Any]:
    """``run``'s keyword arguments for the options above (empty when none was given)."""
    kwargs: dict[str, Any] = {}
    overall, per_kernel = _liveness(remote.get("liveness_timeout") or ())
    headers = {}
    for header in remote.get("gateway_header") or ():
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            raise click.BadParameter(
                f"{header!r}: expected 'NAME: VALUE'", param_hint="--gateway-header"
            )
        headers[name.strip()] = value.strip()
    gateway = None
    if remote.get("gateway_url") or os.environ.get("JUPYTER_GATEWAY_URL"):
        gateway = _gateway(remote, headers, overall, per_kernel)
    connection = remote.get("connection_file")
    if gateway is not None and connection:
        raise click.UsageError("--gateway-url and --connection-file cannot be used together")
    if gateway is not None:
        kwargs["gateway"] = gateway
    elif connection:
        kwargs["connection_info"] = connection
    if per_kernel:  # the engine picks its kernel's ("*": every other kernel)
        kwargs["kernel_liveness_timeout"] = {**({"*": overall} if overall else {}), **per_kernel}
    elif overall is not None:
        kwargs["kernel_liveness_timeout"] = overall
    return kwargs


def _gateway(
    remote: Mapping[str, Any],
    headers: dict[str, str],
    overall: float | None,
    per_kernel: dict[str, float],
) -> Any:
    """The run's gateway (its client, with urllib and ssl, is imported only for such a run)."""
    from ..errors import KernelError
    from ..kernel.gateway import Gateway

    try:
        return Gateway.from_env(
            url=remote.get("gateway_url"),
            token=remote.get("gateway_token"),
            headers=headers or None,
            validate_cert=remote.get("gateway_validate_cert"),
            ca_bundle=remote.get("gateway_ca_bundle"),
            liveness_timeout=overall,
            liveness_timeouts=per_kernel or None,
        )
    except KernelError as exc:
        raise click.UsageError(exc.message) from None
