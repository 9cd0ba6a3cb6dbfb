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
import queue
import secrets
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import KernelError

logger = logging.getLogger("paramill")

#: a message bigger than tornado's 10 MiB default (a notebook's plots, a big DataFrame) is fine
_MAX_MESSAGE = 1 << 30
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
        from .storage import display_url

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
class GatewaySource:
    """Kernels started on a gateway, one per run, deleted at the end (KernelSource-shaped).

    ``starter`` is what the engine calls to get a kernel (``kernel_starter``): async
    ``(kernel_name, cwd=, startup_timeout=, env=) -> (manager, client)``.
    """

    def __init__(self, gateway: Gateway | str | Mapping[str, Any]) -> None:
        self.gateway = Gateway.coerce(gateway)
        self._specs: dict[str, Any] | None = None

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
        km = await _in_thread(self.start, kernel_name, env)
        try:
            kc = await km.connect(startup_timeout)
        except BaseException:
            await _in_thread(km.delete)
            raise
        return km, kc

    def close(self) -> None:
        """Nothing is held between runs (each run deletes its own kernel)."""


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
        kc = GatewayKernelClient(self)
        self.client = kc
        await kc.start(startup_timeout)
        return kc


# -- the WebSocket client ------------------------------------------------------------------------
class _Channel:
    """One of a kernel's channels over the shared WebSocket: a queue of incoming messages."""

    def __init__(self, name: str, client: GatewayKernelClient) -> None:
        self.name = name
        self.client = client
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def get_msg(self, timeout: float | None = None) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            raise queue.Empty from None

    async def msg_ready(self) -> bool:
        return not self.queue.empty()

    def send(self, msg: dict[str, Any]) -> None:
        self.client.send(self.name, msg)

    def is_alive(self) -> bool:
        return self.client.dead_reason is None

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class GatewayKernelClient:
    """The parts of ``AsyncKernelClient`` that nbclient and the engine use, over a gateway's
    WebSocket."""

    allow_stdin = False

    def __init__(self, kernel: GatewayKernel) -> None:
        from jupyter_client.session import Session

        self.kernel = kernel
        # the gateway signs what it passes on to the kernel itself; a key only keeps
        # jupyter_client from warning that signing is off
        self.session = Session(key=secrets.token_bytes(16), username="paramill")
        self.shell_channel = _Channel("shell", self)
        self.iopub_channel = _Channel("iopub", self)
        self.stdin_channel = _Channel("stdin", self)
        self.control_channel = _Channel("control", self)
        self.dead_reason: str | None = None
        self.dead = asyncio.Event()
        self.last_heard = time.monotonic()
        self._pings: set[str] = set()
        self.control_answers = False  # whether the kernel answers kernel_info on control
        self.busy = False  # the kernel's last reported execution state
        self._ws: Any = None
        self._reader: asyncio.Task | None = None
        self._pinger: asyncio.Task | None = None

    @property
    def channels_running(self) -> bool:
        return self._ws is not None and self.dead_reason is None

    async def start(self, startup_timeout: float) -> None:
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        gateway = self.kernel.gateway
        request = HTTPRequest(
            gateway.ws_url(self.kernel.kernel_id) + f"?session_id={self.session.session}",
            headers=gateway.auth_headers(),
            validate_cert=gateway.validate_cert,
            ca_certs=gateway.ca_bundle,
            connect_timeout=startup_timeout,
            request_timeout=startup_timeout,
        )
        try:
            self._ws = await asyncio.wait_for(
                websocket_connect(request, max_message_size=_MAX_MESSAGE), startup_timeout
            )
        except asyncio.TimeoutError:
            raise KernelError(
                f"gateway {gateway.display}: the kernel's channels did not open within "
                f"{startup_timeout:g} s (--start-timeout)"
            ) from None
        except Exception as exc:
            code = getattr(exc, "code", None)
            if code in (401, 403):
                raise KernelError(
                    f"gateway {gateway.display} refused the kernel's WebSocket (HTTP {code}): "
                    "check --gateway-token / JUPYTER_GATEWAY_AUTH_TOKEN"
                ) from None
            raise KernelError(
                f"gateway {gateway.display}: cannot open the kernel's channels: {exc}"
            ) from None
        self._reader = asyncio.ensure_future(self._read())
        try:
            await self.wait_for_ready(startup_timeout)
        except TimeoutError:
            self.stop_channels()
            raise KernelError(
                f"kernel {self.kernel.kernel_name!r} on gateway {gateway.display} did not "
                f"answer within {startup_timeout:g} s (--start-timeout)"
            ) from None
        except RuntimeError as exc:
            self.stop_channels()
            raise KernelError(
                f"kernel {self.kernel.kernel_name!r} on gateway {gateway.display} {exc}"
            ) from None
        self.control_answers = await self._probe_control(min(2.0, startup_timeout))
        self.last_heard = time.monotonic()  # it answered just now (the probe's wait is ours)
        self._pinger = asyncio.ensure_future(self._ping())

    # -- incoming ------------------------------------------------------------------------------
    async def _read(self) -> None:
        from jupyter_client.jsonutil import extract_dates

        channels = {
            "shell": self.shell_channel,
            "iopub": self.iopub_channel,
            "stdin": self.stdin_channel,
            "control": self.control_channel,
        }
        try:
            while True:
                raw = await self._ws.read_message()
                if raw is None:
                    self._die("lost its connection to the gateway (the gateway closed it)")
                    return
                if isinstance(raw, bytes):  # binary frames: only with a subprotocol we did not ask
                    continue
                msg = json.loads(raw)
                self.last_heard = time.monotonic()
                msg["header"] = extract_dates(msg.get("header") or {})
                msg["parent_header"] = extract_dates(msg.get("parent_header") or {})
                msg.setdefault("metadata", {})
                msg.setdefault("content", {})
                msg.setdefault("buffers", [])
                msg["msg_id"] = msg["header"].get("msg_id")
                msg["msg_type"] = msg["header"].get("msg_type")
                channel = msg.pop("channel", None)
                if channel == "iopub" and msg["msg_type"] == "status":
                    state = msg["content"].get("execution_state")
                    if state in ("restarting", "dead", "autorestarting"):
                        self._die(f"died (the gateway reports it {state})")
                        return
                    self.busy = state == "busy"
                parent = msg["parent_header"].get("msg_id")
                if parent in self._pings:  # an answer to a liveness ping: for no one else
                    if channel in ("control", "shell"):
                        self._pings.discard(parent)
                    continue
                if channel in channels:
                    channels[channel].queue.put_nowait(msg)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._die(f"lost its connection to the gateway ({type(exc).__name__}: {exc})")

    async def _probe_control(self, timeout: float) -> bool:
        """Whether the kernel answers ``kernel_info`` on its control channel (now, idle)."""
        msg = self.session.msg("kernel_info_request")
        self.send("control", msg)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                reply = await self.control_channel.get_msg(timeout=left)
            except queue.Empty:
                break
            if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
                return True
        return False

    async def _ping(self) -> None:
        """Ask every second, so that a quiet but live kernel is heard from: on the control
        channel (answered while a cell runs), or for a kernel that does not answer there, on
        the shell channel when it is idle and the last shell ping was answered."""
        while self.dead_reason is None:
            msg = self.session.msg("kernel_info_request")
            if self.control_answers:
                channel = "control"
            elif not self.busy and not self._pings:
                channel = "shell"
            else:
                channel = None
            if channel:
                if len(self._pings) > 100:
                    self._pings.clear()
                self._pings.add(msg["header"]["msg_id"])
                self.send(channel, msg)
            await asyncio.sleep(1.0)

    def _die(self, reason: str) -> None:
        if self.dead_reason is None:
            self.dead_reason = reason
            self.dead.set()

    async def watch_liveness(self, timeout: float) -> str:
        """Return why the kernel is dead once it is: the gateway said so, the connection
        closed, or nothing was heard from the kernel for ``timeout`` seconds."""
        specific = self.kernel.source.liveness_timeout(self.kernel.kernel_name)
        if specific is not None:
            timeout = specific
        while self.dead_reason is None:
            silent = time.monotonic() - self.last_heard
            # a kernel that answers only between cells is not dead for being quiet in one
            if silent >= timeout and (self.control_answers or not self.busy):
                self._die(f"stopped responding (nothing heard from it for {timeout:g} s)")
                break
            try:
                await asyncio.wait_for(
                    self.dead.wait(), timeout - silent if silent < timeout - 0.1 else 1.0
                )
            except asyncio.TimeoutError:
                pass
        return f"the kernel on gateway {self.kernel.gateway.display} {self.dead_reason}"

    # -- outgoing ------------------------------------------------------------------------------
    def send(self, channel: str, msg: dict[str, Any]) -> None:
        from jupyter_client.jsonutil import json_default

        if self._ws is None or self.dead_reason is not None:
            return
        wire = {
            "header": msg["header"],
            "parent_header": msg.get("parent_header") or {},
            "metadata": msg.get("metadata") or {},
            "content": msg.get("content") or {},
            "channel": channel,
            "buffers": [],
        }
        try:
            future = self._ws.write_message(json.dumps(wire, default=json_default))
        except Exception as exc:  # closed meanwhile
            self._die(f"lost its connection to the gateway ({type(exc).__name__})")
            return
        future.add_done_callback(lambda f: f.cancelled() or f.exception())

    def execute(
        self,
        code: str,
        silent: bool = False,
        store_history: bool = True,
        user_expressions: dict[str, Any] | None = None,
        allow_stdin: bool | None = None,
        stop_on_error: bool = True,
    ) -> str:
        content = {
            "code": code,
            "silent": silent,
            "store_history": store_history,
            "user_expressions": user_expressions or {},
            "allow_stdin": False,
            "stop_on_error": stop_on_error,
        }
        msg = self.session.msg("execute_request", content)
        self.send("shell", msg)
        return msg["header"]["msg_id"]

    def kernel_info(self) -> str:
        msg = self.session.msg("kernel_info_request")
        self.send("shell", msg)
        return msg["header"]["msg_id"]

    def shutdown(self, restart: bool = False) -> str:
        msg = self.session.msg("shutdown_request", {"restart": restart})
        self.send("control", msg)
        return msg["header"]["msg_id"]

    async def get_shell_msg(self, timeout: float | None = None) -> dict[str, Any]:
        return await self.shell_channel.get_msg(timeout)

    async def get_iopub_msg(self, timeout: float | None = None) -> dict[str, Any]:
        return await self.iopub_channel.get_msg(timeout)

    async def is_alive(self) -> bool:
        return self.dead_reason is None

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or 60)
        while True:
            msg_id = self.kernel_info()
            try:
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError("kernel did not answer")
                    if self.dead_reason is not None:
                        raise RuntimeError(self.dead_reason)
                    reply = await self.shell_channel.get_msg(timeout=min(1.0, left))
                    if reply["parent_header"].get("msg_id") == msg_id:
                        break
                break
            except queue.Empty:
                continue
        # drain what came before: the kernel's startup status messages
        while not self.iopub_channel.queue.empty():
            self.iopub_channel.queue.get_nowait()

    async def execute_interactive(
        self,
        code: str,
        silent: bool = False,
        store_history: bool = True,
        user_expressions: dict[str, Any] | None = None,
        allow_stdin: bool | None = None,
        stop_on_error: bool = True,
        timeout: float | None = None,
        output_hook: Any = None,
        stdin_hook: Any = None,
    ) -> dict[str, Any]:
        msg_id = self.execute(code, silent, store_history, user_expressions, False, stop_on_error)
        deadline = None if timeout is None else time.monotonic() + timeout
        idle = False
        while not idle:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                msg = await self.iopub_channel.get_msg(timeout=left)
            except queue.Empty:
                raise TimeoutError("timeout waiting for output") from None
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if output_hook is not None:
                output_hook(msg)
            idle = msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle"
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                reply = await self.shell_channel.get_msg(timeout=left)
            except queue.Empty:
                raise TimeoutError("timeout waiting for reply") from None
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply

    def _handle_kernel_info_reply(self, msg: dict[str, Any]) -> None:
        pass

    def start_channels(self, *args: Any, **kwargs: Any) -> None:
        pass

    def stop_channels(self) -> None:
        for task in (self._pinger, self._reader):
            if task is not None and not task.done():
                task.cancel()
        self._pinger = self._reader = None
        if self._ws is not None:
            self._ws.close()
            self._ws = None
        if self.dead_reason is None:
            self.dead_reason = "closed"

    def close_now(self) -> None:
        try:
            self.stop_channels()
        except Exception:
            pass


# -- sweeps: kernels started ahead -----------------------------------------------------------------
class GatewayPool:
    """Gateway kernels started ahead of the runs that take them (like the local pool): up to
    ``size`` starting or ready at once, ``limit`` in all. Each is handed out once and deleted
    by the run that took it; ``close`` deletes those never handed out."""

    def __init__(
        self,
        source: GatewaySource,
        kernel_name: str | None,
        env: Mapping[str, str] | None,
        size: int,
        limit: int,
    ) -> None:
        import collections
        import concurrent.futures
        import threading

        self.source = source
        self.key = (kernel_name, dict(env or {}))
        self.limit = limit
        self._lock = threading.Lock()
        self._queue: collections.deque = collections.deque()
        self._started = 0
        self._closed = False
        self._threads = concurrent.futures.ThreadPoolExecutor(
            max(1, size), thread_name_prefix="paramill-gateway"
        )
        if kernel_name:
            for _ in range(min(size, limit)):
                self._start_one()

    def _start_one(self) -> None:
        # called with the lock held, or before other threads see the pool
        if self._closed or self._started >= self.limit:
            return
        self._started += 1
        name, env = self.key
        self._queue.append(self._threads.submit(self.source.start, name, env))

    def _take(self, kernel_name: str, env: Mapping[str, str] | None) -> Any:
        with self._lock:
            if (kernel_name, dict(env or {})) != self.key or not self._queue:
                return None
            future = self._queue.popleft()
            self._start_one()
            return future

    async def starter(
        self,
        kernel_name: str,
        *,
        cwd: Any = None,
        startup_timeout: float = 60,
        env: Mapping[str, str] | None = None,
    ) -> tuple[GatewayKernel, GatewayKernelClient]:
        future = self._take(kernel_name, env)
        if future is None:
            return await self.source.starter(
                kernel_name, cwd=cwd, startup_timeout=startup_timeout, env=env
            )
        try:
            km = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.add_done_callback(_delete_started)
            raise
        try:
            kc = await km.connect(startup_timeout)
        except BaseException:
            await _in_thread(km.delete)
            raise
        return km, kc

    def close(self) -> None:
        with self._lock:
            self._closed = True
            left, self._queue = list(self._queue), type(self._queue)()
        for future in left:
            future.add_done_callback(_delete_started)
        self._threads.shutdown(wait=True)

    def __enter__(self) -> GatewayPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _delete_started(future: Any) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().delete()


class RemoteSweepKernels:
    """What a sweep's local executor uses for kernels elsewhere: on a gateway, each run gets
    its own kernel from a ``GatewayPool`` (``workers`` at a time, started ahead unless
    ``warm`` is off); on an existing kernel (``connection_info``) runs go one at a time, since
    they share it."""

    def __init__(
        self, specs: list[Any], run_options: dict[str, Any], workers: int, warm: bool
    ) -> None:
        from .secrets import kernel_env

        options = dict(run_options)
        gateway = options.pop("gateway", None)
        self.pool: GatewayPool | None = None
        self.workers = workers
        if gateway is None:
            from .kernel_connection import ConnectionSource

            self.starter = ConnectionSource(options.pop("connection_info")).starter
            if workers > 1:
                logger.info("One existing kernel: the runs go one at a time")
            self.workers = 1
        else:
            from .sweeps import first_notebook, kernel_for

            source = gateway if isinstance(gateway, GatewaySource) else GatewaySource(gateway)
            name = kernel_for(first_notebook(specs, options), options) if warm else None
            env = {
                **(options.get("kernel_env") or {}),
                **kernel_env(options.get("secrets") or {}),
            }
            self.pool = GatewayPool(
                source, name, env, size=min(2 * workers, len(specs)), limit=len(specs)
            )
            self.starter = self.pool.starter
        self.run_options = options

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
