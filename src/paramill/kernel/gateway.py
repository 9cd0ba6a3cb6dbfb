"""Kernels on a Jupyter gateway: Jupyter Kernel Gateway, Jupyter Server, Enterprise Gateway.

A kernel is started with the gateway's REST API (``POST /api/kernels``, the run's environment --
secrets included -- in the request body), its cells run over the kernel's WebSocket
(``/api/kernels/<id>/channels``, Jupyter's JSON message protocol), and the kernel is deleted on
the gateway (``DELETE /api/kernels/<id>``) at the end of the run and on every failure path.

Why not jupyter_server's ``GatewayKernelManager``: its settings live in one process-wide
singleton (``GatewayClient.instance()``) and its client opens the WebSocket without the token
(which needs patching ``websocket.create_connection`` for the whole process); sweeps run several
kernels from threads, possibly with different gateways or headers. This module keeps every
setting on the source object: REST over urllib (no loop needed, so cleanup also works from a
broken loop), the WebSocket over tornado (already a dependency of jupyter_client), both in the
run's own event loop.

No local process: liveness is silence alone. The client asks the kernel for ``kernel_info``
every second; no message of any kind for ``liveness_timeout`` seconds, the WebSocket closing
(gateway gone) or the gateway reporting the kernel ``restarting``/``dead`` ends the run with
:class:`~paramill.errors.KernelDiedError` (exit 138). ipykernel and most kernels answer on the
control channel while a cell runs; a kernel that does not answer there (IRkernel: measured, no
reply even when idle) is asked on the shell channel between cells, and its silence counts only
then -- as a local IRkernel, which answers heartbeats only between cells, is not declared dead
while its process runs. A long cell on such a kernel is bounded by ``--execution-timeout``; the
gateway itself reports its process dying (``restarting``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import KernelError
from .source import Kernel, KernelSource

if TYPE_CHECKING:
    from .gateway_client import GatewayKernelClient

logger = logging.getLogger("paramill")

_ENV = {
    "url": "JUPYTER_GATEWAY_URL",
    "token": "JUPYTER_GATEWAY_AUTH_TOKEN",
    "headers": "JUPYTER_GATEWAY_HEADERS",
    "validate_cert": "JUPYTER_GATEWAY_VALIDATE_CERT",
    "ca_bundle": "JUPYTER_GATEWAY_CA_CERTS",
    "request_timeout": "JUPYTER_GATEWAY_REQUEST_TIMEOUT",
}


@dataclass
class Gateway:
    """Where the gateway is and how to talk to it (``paramill.run(..., gateway=...)`` takes one
    of these, a URL, or a dict of these fields)."""

    url: str
    token: str | None = field(default=None, repr=False)
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    validate_cert: bool = True
    ca_bundle: str | None = None
    request_timeout: float = 60.0
    #: seconds of silence after which a kernel counts as dead, for every kernelspec ...
    liveness_timeout: float | None = None
    #: ... or per kernelspec name (wins over the above and over the kernelspec's metadata)
    liveness_timeouts: dict[str, float] = field(default_factory=dict)
    auth_scheme: str = "token"

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise KernelError(f"gateway URL must start with http:// or https://: {self.url!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Gateway | None:
        """The gateway Jupyter's own gateway client would use (``JUPYTER_GATEWAY_*``), with
        ``overrides`` (options given explicitly) winning; None when no URL is set anywhere."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, var in _ENV.items():
            if env.get(var):
                values[name] = env[var]
        if "headers" in values:
            try:
                values["headers"] = dict(json.loads(values["headers"]))
            except (ValueError, TypeError):
                raise KernelError(f"{_ENV['headers']} is not a JSON object") from None
        if "validate_cert" in values:
            values["validate_cert"] = values["validate_cert"].lower() not in ("0", "false", "no")
        if "request_timeout" in values:
            values["request_timeout"] = float(values["request_timeout"])
        given = {k: v for k, v in overrides.items() if v is not None}
        if "headers" in given:
            given["headers"] = {**values.get("headers", {}), **given["headers"]}
        values.update(given)
        if not values.get("url"):
            return None
        return cls(**values)

    @classmethod
    def coerce(cls, value: Any) -> Gateway:
        if isinstance(value, Gateway):
            return value
        if isinstance(value, str):
            return cls.from_env(url=value) or cls(url=value)
        if isinstance(value, Mapping):
            return cls(**value)
        raise TypeError(f"gateway= takes a URL, a dict or a paramill Gateway, not {value!r}")

    # -- REST ----------------------------------------------------------------------------------
    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.url.startswith("https://"):
            return None
        context = ssl.create_default_context(cafile=self.ca_bundle)
        if not self.validate_cert:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def auth_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.token:
            headers.setdefault("Authorization", f"{self.auth_scheme} {self.token}")
        return headers

    def request(
        self, method: str, path: str, body: Any = None, timeout: float | None = None
    ) -> Any:
        """One REST call; a gateway that cannot be reached or refuses us is a KernelError."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={**self.auth_headers(), "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(
                request, timeout=timeout or self.request_timeout, context=self._ssl_context()
            ) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise self._http_error(exc, method, path) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise KernelError(f"gateway {self.display} is unreachable: {reason}") from None
        return json.loads(raw) if raw else None

    @property
    def display(self) -> str:
        from ..storage import display_url

        return display_url(self.url)

    def _http_error(self, exc: urllib.error.HTTPError, method: str, path: str) -> KernelError:
        if exc.code in (401, 403):
            if not self.token and "Authorization" not in self.headers:
                hint = "no token given (--gateway-token or JUPYTER_GATEWAY_AUTH_TOKEN)"
            else:
                hint = "check --gateway-token / JUPYTER_GATEWAY_AUTH_TOKEN"
            detail = _reason(exc)
            if exc.code == 403 and detail and "forbidden" not in detail.lower():
                hint += f"; the gateway says: {detail}"
            return KernelError(
                f"gateway {self.display} refused the request (HTTP {exc.code} "
                f"{'Unauthorized' if exc.code == 401 else 'Forbidden'}): {hint}"
            )
        detail = _reason(exc)
        return KernelError(
            f"gateway {self.display}: {method} {path} failed with HTTP {exc.code}"
            + (f": {detail}" if detail else "")
        )

    def kernelspecs(self) -> dict[str, Any]:
        """The gateway's kernelspecs by name (``GET /api/kernelspecs``)."""
        return (self.request("GET", "/api/kernelspecs") or {}).get("kernelspecs", {})

    def list_kernels(self) -> list[dict[str, Any]]:
        return self.request("GET", "/api/kernels") or []

    def start_kernel(self, kernel_name: str, env: Mapping[str, str] | None = None) -> str:
        body: dict[str, Any] = {"name": kernel_name}
        if env:
            body["env"] = dict(env)  # secrets travel here: never logged
        model = self.request("POST", "/api/kernels", body)
        return model["id"]

    def delete_kernel(self, kernel_id: str, patience: float = 30.0) -> None:
        """Delete a kernel; one that is already gone (404) is fine. A server error is asked
        again for up to ``patience`` seconds: a kernel the gateway is restarting (it died) cannot
        be deleted until the restart is over (jupyter_client answers 500 meanwhile)."""
        path = f"/api/kernels/{urllib.parse.quote(kernel_id)}"
        deadline = time.monotonic() + patience
        pause = 0.1
        while True:
            try:
                self.request("DELETE", path, timeout=30)
                return
            except KernelError as exc:
                text = str(exc)
                if "HTTP 404" in text:
                    return
                if "HTTP 5" not in text or time.monotonic() + pause > deadline:
                    logger.warning("Could not delete kernel %s: %s", kernel_id, exc.message)
                    return
            time.sleep(pause)
            pause = min(pause * 2, 2.0)

    def ws_url(self, kernel_id: str) -> str:
        scheme = "wss" if self.url.startswith("https://") else "ws"
        return f"{scheme}{self.url[self.url.index(':'):]}/api/kernels/" + urllib.parse.quote(
            kernel_id
        ) + "/channels"


def _reason(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read() or b"{}")
        text = body.get("message") or body.get("reason") or ""
    except (ValueError, AttributeError, OSError):
        text = ""
    return str(text or exc.reason or "").strip().splitlines()[0] if (text or exc.reason) else ""


# -- kernel source -------------------------------------------------------------------------------
class GatewaySource(KernelSource):
    """Kernels started on a gateway, one per run, deleted at the end (KernelSource-shaped).

    ``starter`` is what the engine calls to get a kernel (``kernel_starter``): async
    ``(kernel_name, cwd=, startup_timeout=, env=) -> (manager, client)``.
    """

    def __init__(self, gateway: Gateway | str | Mapping[str, Any]) -> None:
        self.gateway = Gateway.coerce(gateway)
        self._specs: dict[str, Any] | None = None
        self._early: tuple[Any, Any] | None = None  # (request key, future of a started kernel)

    def kernelspecs(self) -> dict[str, Any]:
        if self._specs is None:
            self._specs = self.gateway.kernelspecs()
        return self._specs

    def check_kernel_name(self, kernel_name: str) -> dict[str, Any]:
        specs = self.kernelspecs()
        if kernel_name not in specs:
            names = ", ".join(sorted(specs)) or "none"
            raise KernelError(
                f"no kernel named {kernel_name!r} on gateway {self.gateway.display} "
                f"(it has: {names})"
            )
        return specs[kernel_name]

    def liveness_timeout(self, kernel_name: str) -> float | None:
        gateway = self.gateway
        if kernel_name in gateway.liveness_timeouts:
            return float(gateway.liveness_timeouts[kernel_name])
        spec = (self._specs or {}).get(kernel_name) or {}
        meta = ((spec.get("spec") or {}).get("metadata") or {}).get("paramill") or {}
        if meta.get("liveness_timeout") is not None:
            return float(meta["liveness_timeout"])
        return gateway.liveness_timeout

    def start(self, kernel_name: str, env: Mapping[str, str] | None = None) -> GatewayKernel:
        """Start a kernel on the gateway (blocking; no client yet)."""
        self.check_kernel_name(kernel_name)
        kernel_id = self.gateway.start_kernel(kernel_name, env)
        logger.debug("Started kernel %s (%s) on %s", kernel_id, kernel_name, self.gateway.display)
        return GatewayKernel(self, kernel_id, kernel_name)

    async def starter(
        self,
        kernel_name: str,
        *,
        cwd: Any = None,
        startup_timeout: float = 60,
        env: Mapping[str, str] | None = None,
    ) -> tuple[GatewayKernel, GatewayKernelClient]:
        if cwd is not None:
            logger.debug("--cwd is a local folder: the gateway's kernel runs in its own")
        early, self._early = self._early, None
        if early is not None and early[0] == (kernel_name, tuple(sorted((env or {}).items()))):
            try:
                km = await asyncio.wrap_future(early[1])
            except asyncio.CancelledError:
                early[1].add_done_callback(_delete_when_started)
                raise
        else:
            if early is not None:  # started for another kernel or environment
                early[1].add_done_callback(_delete_when_started)
            km = await _in_thread(self.start, kernel_name, env)
        try:
            kc = await km.connect(startup_timeout)
        except BaseException:
            await _in_thread(km.delete)
            raise
        return km, kc

    # -- the KernelSource interface of the run-path redesign (paramill.kernel.source) -----------
    def prepare(self, request: Any) -> None:
        """Start ``request``'s kernel now, while the notebook is read and parameterized (the
        gateway boots it meanwhile); ``acquire`` takes it. Never raises."""
        import concurrent.futures

        if self._early is not None:
            return
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="paramill-gateway")
        self._early = (_request_key(request), pool.submit(self.start, request.kernel_name,
                                                          dict(request.env or {})))  # fmt: skip
        pool.shutdown(wait=False)

    async def acquire(self, request: Any) -> Any:
        """A started, connected kernel for ``request`` (the one ``prepare`` started, if it
        matches); every failure deletes what was started."""
        env = dict(request.env or {})
        km, kc = await self.starter(
            request.kernel_name, startup_timeout=request.startup_timeout, env=env
        )
        return _kernel_record(km, kc, self, request)

    async def release(self, kernel: Any, *, grace: float = 3.0) -> None:
        """The run is over: close its channels and delete the kernel on the gateway."""
        kernel.client.stop_channels()
        await kernel.manager.kill()

    def kill(self, kernel: Any) -> None:
        """Delete the kernel now, from any thread (the run's loop may be broken)."""
        kernel.manager.kill_now()

    def is_running(self, kernel: Any) -> bool:
        return not kernel.manager.deleted and kernel.client.dead_reason is None

    def close(self) -> None:
        """Delete a kernel ``prepare`` started that no run took."""
        early, self._early = self._early, None
        if early is not None:
            early[1].add_done_callback(_delete_when_started)

    def __enter__(self) -> GatewaySource:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _request_key(request: Any) -> tuple[str, tuple[tuple[str, str], ...]]:
    return (request.kernel_name, tuple(sorted(dict(request.env or {}).items())))


def _delete_when_started(future: Any) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().delete()


def _kernel_record(km: GatewayKernel, kc: Any, source: Any, request: Any) -> Kernel:
    """The run path's ``Kernel`` (paramill.kernel.source) for a gateway kernel: no local pid,
    owned (deleted when released)."""
    return Kernel(km, kc, source, request, pid=None, owned=True)


async def _in_thread(func: Any, *args: Any) -> Any:
    """Run a blocking call in a thread; cancelled meanwhile, wait for it anyway (a kernel it
    started must be known, to be deleted) and clean up what it returned, then re-raise."""
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(None, func, *args)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        try:
            result = await asyncio.wait_for(future, 60)
        except BaseException:
            raise asyncio.CancelledError from None
        if isinstance(result, GatewayKernel):
            await loop.run_in_executor(None, result.delete)
        raise


class GatewayKernel:
    """A kernel on a gateway, shaped like the parts of ``AsyncKernelManager`` the engine uses
    (``has_kernel``, ``provisioner.kill()``, ``cleanup_resources()``): stopping it deletes it."""

    def __init__(self, source: GatewaySource, kernel_id: str, kernel_name: str) -> None:
        self.source = source
        self.gateway = source.gateway
        self.kernel_id = kernel_id
        self.kernel_name = kernel_name
        self.deleted = False
        self.client: GatewayKernelClient | None = None

    # what the engine's stop_kernel/kernel_pid look at
    @property
    def has_kernel(self) -> bool:
        return not self.deleted

    @property
    def provisioner(self) -> GatewayKernel:
        return self

    process = None  # no local process: liveness is silence alone

    async def kill(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.delete)

    async def wait(self) -> None:
        return None

    async def cleanup_resources(self, restart: bool = False) -> None:
        if not self.deleted:
            await self.kill()

    def kill_now(self) -> None:
        """Delete the kernel without an event loop (the engine's loop broke)."""
        if self.client is not None:
            self.client.close_now()
        self.delete()

    def delete(self) -> None:
        if self.deleted:
            return
        self.deleted = True
        self.gateway.delete_kernel(self.kernel_id)

    async def connect(self, startup_timeout: float) -> GatewayKernelClient:
        from .gateway_client import GatewayKernelClient

        kc = GatewayKernelClient(self)
        self.client = kc
        await kc.start(startup_timeout)
        return kc
