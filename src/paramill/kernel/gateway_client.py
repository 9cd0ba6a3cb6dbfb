"""The client side of a gateway kernel: Jupyter's JSON message protocol over the kernel's
WebSocket (``/api/kernels/<id>/channels``), shaped like the parts of jupyter_client's
``AsyncKernelClient`` that nbclient and paramill's engine use.

Liveness without a local process: see ``kernel.gateway``'s module docstring.
"""

from __future__ import annotations

import asyncio
import json
import queue
import secrets
import time
from typing import TYPE_CHECKING, Any

from ..errors import KernelError

if TYPE_CHECKING:
    from .gateway import GatewayKernel

#: a message bigger than tornado's 10 MiB default (a notebook's plots, a big DataFrame) is fine
_MAX_MESSAGE = 1 << 30


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
        self._reported = False  # watch_liveness has returned the reason
        self._died_at = 0.0
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
            self._died_at = time.monotonic()
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
        self._reported = True
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
        # dead once the liveness watcher has told the engine why (nbclient polls this every
        # second and would otherwise end the run first, with no reason); 2 s without a watcher
        if self.dead_reason is None:
            return True
        return not (self._reported or time.monotonic() - self._died_at > 2.0)

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
