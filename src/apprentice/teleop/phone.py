"""Phone: the teleop node serves a small page; the phone's browser sends its orientation and buttons back.

One port serves both: `GET /` is the page (phone_page.PAGE), `/ws` the websocket (the `websockets`
package, on its own asyncio thread). The page sends `{"type": "state", "alpha", "beta", "gamma"
(degrees, DeviceOrientationEvent), "buttons": [held...]}` on every sensor event and at least 30 times a
second, and `{"type": "press", "button": ...}` for one-shot buttons (episode control, intervention).
Orientation becomes position inputs `alpha`/`beta`/`gamma` in radians. Phones only give
DeviceOrientation to secure pages: on the LAN serve HTTPS (certfile/keyfile), e.g. a self-signed pair
from `openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 365 -subj /CN=robot`.
"""

from __future__ import annotations

import asyncio
import json
import math
import ssl
import threading
from http import HTTPStatus
from typing import Any

from apprentice.teleop.device import InputState
from apprentice.teleop.errors import TeleopError
from apprentice.teleop.phone_page import PAGE

HOLD_BUTTONS = ("deadman", "gripper_open", "gripper_close")
PRESS_BUTTONS = ("start", "stop", "rerecord", "discard", "intervention")


class PhoneServer:
    """Serves the page and reads the phone; `port=0` picks a free port (see `.port`, `.url`)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8766, certfile: str = "", keyfile: str = "") -> None:
        import websockets  # noqa: F401  (fail here, with the hint below, not on the server thread)

        self.state = InputState()
        self.state.connected = False  # no phone until one connects
        self.host = host
        self.ssl = _ssl_context(certfile, keyfile) if certfile or keyfile else None
        self.clients = 0
        self._loop = asyncio.new_event_loop()
        self._stopped: asyncio.Future | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(port,), name="phone", daemon=True)
        self._thread.start()
        self._ready.wait(10.0)
        if self._error is not None:
            raise TeleopError(
                f"phone: cannot serve on {host}:{port} ({self._error}); pick another phone_port"
            ) from None
        scheme = "https" if self.ssl else "http"
        self.url = f"{scheme}://{host}:{self.port}/"
        self.name = f"phone at {self.url}"

    def _run(self, port: int) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve(port))
        finally:
            self._loop.close()

    async def _serve(self, port: int) -> None:
        from websockets.asyncio.server import serve

        self._stopped = self._loop.create_future()
        try:
            server = await serve(self._handler, self.host, port, process_request=self._http, ssl=self.ssl)
        except OSError as exc:
            self._error = exc
            self._ready.set()
            return
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stopped

    def _http(self, connection: Any, request: Any) -> Any:
        """Plain HTTP for everything but the websocket path: the page itself, or 404."""
        from websockets.datastructures import Headers
        from websockets.http11 import Response

        if request.path == "/ws":
            return None
        if request.path in ("/", "/index.html"):
            body = PAGE.encode()
            headers = Headers([("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body))),
                               ("Cache-Control", "no-store")])  # fmt: skip
            return Response(HTTPStatus.OK.value, "OK", headers, body)
        return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")

    async def _handler(self, websocket: Any) -> None:
        self.clients += 1
        self.state.alive()
        held: set[str] = set()
        try:
            async for text in websocket:
                held = self._on_message(text, held)
        except Exception as exc:
            from websockets.exceptions import ConnectionClosed

            if not isinstance(exc, ConnectionClosed):
                raise
        finally:
            self.clients -= 1
            if self.clients == 0:
                self.state.lost()

    def _on_message(self, text: str | bytes, held: set[str]) -> set[str]:
        try:
            msg = json.loads(text)
        except ValueError:
            return held  # not ours; the page only sends JSON
        if msg.get("type") == "press" and msg.get("button") in PRESS_BUTTONS:
            self.state.set_button(msg["button"], True)
            self.state.set_button(msg["button"], False)
        elif msg.get("type") == "state":
            angles = {a: msg.get(a) for a in ("alpha", "beta", "gamma")}
            angles = {a: math.radians(v) for a, v in angles.items() if isinstance(v, (int, float)) and math.isfinite(v)}
            if angles:  # null until the phone's sensors deliver (or on a laptop without them)
                self.state.set_positions(angles)
            now_held = {b for b in msg.get("buttons", []) if b in HOLD_BUTTONS}
            for button in held ^ now_held:
                self.state.set_button(button, button in now_held)
            held = now_held
            self.state.alive()
        return held

    def close(self) -> None:
        if self._stopped is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(lambda: self._stopped.done() or self._stopped.set_result(None))
        self._thread.join(timeout=3.0)


def _ssl_context(certfile: str, keyfile: str) -> ssl.SSLContext:
    if not (certfile and keyfile):
        raise TeleopError("phone: give both phone_certfile and phone_keyfile for HTTPS (or neither for HTTP)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise TeleopError(f"phone: cannot load certificate {certfile} / key {keyfile} ({exc})") from exc
    return context
