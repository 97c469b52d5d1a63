"""The web app on waitress, a production WSGI server (the ``braintumor serve`` command is
:mod:`braintumor.commands.serve`).

Request bodies stay in memory (waitress would otherwise buffer bodies over 512 KB in a temporary
file) and no ``Server`` banner is sent. The connection limits and timeouts are chosen for this
service (see docs/web.md, "Limits"):

* waitress reads every request in full on its one I/O thread before any request thread sees it,
  so a slow upload holds a connection, never a thread;
* :data:`CONNECTION_LIMIT` connections at once (waitress's default, 100, let 110 idle connections
  lock everyone out); a connection that sends nothing for :data:`CHANNEL_TIMEOUT_S` seconds while
  no answer is owed to it (idle, or stalled part-way through its headers or body) is closed, checked
  every :data:`CLEANUP_INTERVAL_S` seconds;
* deadlines for a whole request, not only for silence (a client that sends its headers one byte
  every few seconds is never idle): its headers within :data:`HEADER_DEADLINE_S` seconds of its
  first byte, its body within :data:`REQUEST_DEADLINE_S`;
* per client address, at most :data:`CLIENT_SLOW_REQUESTS` requests still arriving after
  :data:`SLOW_AFTER_S` seconds, and at most :data:`CLIENT_PENDING_BYTES` of bodies still arriving
  (the newest are closed past either), so that one client's slow connections cannot fill the house
  or its memory while a quick request (a health check) is still accepted and answered at once;
* request threads: what the heavy-work gate admits, plus light ones
  (:func:`braintumor.web.work.request_threads`), so that health checks never wait behind heavy
  requests;
* waitress's own refusals (a body over :data:`MAX_BODY_BYTES`, headers over
  :data:`MAX_HEADER_BYTES`, a request it cannot parse) are JSON with the same security headers as
  every other answer.
"""

from __future__ import annotations

import json
import threading
import time

from . import MAX_UPLOAD_BYTES
from .headers import security_headers

# Waitress refuses bodies over this before the app sees them (and closes the connection while the
# client may still be sending, which a browser shows as a reset); between the app's 16 MB limit and
# this, the app reads the body and answers the 413 with its message.
MAX_BODY_BYTES = 2 * MAX_UPLOAD_BYTES
MAX_HEADER_BYTES = 64 * 1024
CONNECTION_LIMIT = 1024
CHANNEL_TIMEOUT_S = 30
CLEANUP_INTERVAL_S = 1
HEADER_DEADLINE_S = 10.0
REQUEST_DEADLINE_S = 120.0
SLOW_AFTER_S = 2.0
CLIENT_SLOW_REQUESTS = 16
CLIENT_PENDING_BYTES = 2 * MAX_BODY_BYTES

WAITRESS_MESSAGES = {
    400: "the request could not be read",
    413: f"the request body is over {MAX_BODY_BYTES >> 20} MB; send a scan of at most "
         f"{MAX_UPLOAD_BYTES >> 20} MB",
    431: f"the request's header fields are over {MAX_HEADER_BYTES >> 10} KB",
}


def _json_error_channel():
    """A waitress channel whose own error answers are JSON with the security headers."""
    from waitress.channel import HTTPChannel
    from waitress.task import ErrorTask

    class JsonErrorTask(ErrorTask):
        def execute(self):
            error = self.request.error
            message = WAITRESS_MESSAGES.get(error.code, str(error.reason).lower())
            body = json.dumps({"error": message}).encode("utf-8")
            self.status = f"{error.code} {error.reason}"
            self.response_headers.append(("Content-Type", "application/json"))
            self.response_headers.extend(security_headers("/api/").items())
            self.set_close_on_finish()
            self.content_length = len(body)
            self.write(body)

    class DeadlineChannel(HTTPChannel):
        """Records when the request being read began (its first byte), for the deadlines."""

        error_task_class = JsonErrorTask
        request_started: float | None = None
        share_checked = None  # the request whose body's length was last checked against the share

        def received(self, data):
            before = self.request
            result = super().received(data)
            if self.request is None:
                self.request_started = None
            elif self.request is not before or self.request_started is None:
                self.request_started = time.monotonic()
            req = self.request
            if req is not None and req.headers_finished and self.share_checked is not req:
                self.share_checked = req  # once a request, when its body's length is known
                if over_pending_share(self, self.server.active_channels.values()):
                    self.will_close = True
            return result

        def pending_bytes(self) -> int:
            """Bytes of the body of the request still arriving (0 when there is none)."""
            req = self.request
            if req is None or not req.headers_finished:
                return 0
            rcv = getattr(req, "body_rcv", None)
            try:
                return max(int(req.content_length or 0), len(rcv.getbuf()) if rcv is not None else 0)
            except Exception:  # a receiver without a buffer
                return int(req.content_length or 0)

    return DeadlineChannel


def client_of(ch) -> str:
    return ch.addr[0] if isinstance(ch.addr, tuple) else str(ch.addr)


def over_pending_share(channel, channels) -> bool:
    """Whether the bodies still arriving from ``channel``'s client, counted by their declared
    length with this one's, are over :data:`CLIENT_PENDING_BYTES` (checked once a request's
    headers are in, before its body is read)."""
    client = client_of(channel)
    pending = sum(ch.pending_bytes() for ch in channels
                  if not ch.will_close and getattr(ch, "request", None) is not None and client_of(ch) == client)
    return pending > CLIENT_PENDING_BYTES


def close_slow_requests(channels, now: float) -> int:
    """Mark for closing the connections whose request is past a deadline, and each client's
    newest slow requests past its share (see the module's description). Returns how many."""
    closing = 0
    slow: dict[str, list] = {}
    arriving: dict[str, list] = {}
    for ch in channels:
        started = getattr(ch, "request_started", None)
        if started is None or ch.will_close or ch.request is None:
            continue
        age = now - started
        if age > (REQUEST_DEADLINE_S if ch.request.headers_finished else HEADER_DEADLINE_S):
            ch.will_close = True
            closing += 1
            continue
        if age > SLOW_AFTER_S:
            slow.setdefault(client_of(ch), []).append(ch)
        if ch.pending_bytes():  # a body still arriving counts against the share at any age
            arriving.setdefault(client_of(ch), []).append(ch)
    for chans in slow.values():
        chans.sort(key=lambda ch: ch.request_started)  # oldest first: the newest go
        for ch in chans[CLIENT_SLOW_REQUESTS:]:
            ch.will_close = True
            closing += 1
    for chans in arriving.values():
        chans.sort(key=lambda ch: ch.request_started)
        pending = 0
        for ch in chans:
            pending += ch.pending_bytes()
            if pending > CLIENT_PENDING_BYTES and not ch.will_close:
                ch.will_close = True
                closing += 1
    return closing


def raise_open_files_limit(needed: int) -> None:
    """Let this process hold ``needed`` open files where its soft limit is lower (up to the hard
    limit), so that the connection limit, not the system, decides."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass


def make_server(app, host: str = "127.0.0.1", port: int = 0, threads: int | None = None):
    """A waitress server for ``app`` (not yet running): ``server.run()`` serves until
    ``server.close()``; ``server.effective_port`` is the port it got. Request threads: ``threads``,
    but never fewer than :func:`~braintumor.web.work.request_threads` (what the app's work gate
    admits, and light ones)."""
    from waitress import create_server
    from waitress.server import BaseWSGIServer

    from .work import request_threads  # Flask: imported when a server is made

    raise_open_files_limit(CONNECTION_LIMIT + 64)
    sockets: dict = {}
    server = create_server(
        app, map=sockets, host=host, port=port, threads=max(threads or 0, request_threads(app)),
        ident="",  # no Server banner
        max_request_body_size=MAX_BODY_BYTES,
        max_request_header_size=MAX_HEADER_BYTES,
        inbuf_overflow=MAX_BODY_BYTES + 1,  # bodies stay in memory, never in a temporary file
        connection_limit=CONNECTION_LIMIT,
        channel_timeout=CHANNEL_TIMEOUT_S,
        cleanup_interval=CLEANUP_INTERVAL_S,
        asyncore_use_poll=True,  # select() cannot watch descriptors past 1024
        clear_untrusted_proxy_headers=True,
    )
    channel = _json_error_channel()
    for listener in list(sockets.values()):
        if isinstance(listener, BaseWSGIServer):
            listener.channel_class = channel
            _add_deadlines(listener)
    return server


def _add_deadlines(listener) -> None:
    """Run :func:`close_slow_requests` in the listener's maintenance (every
    :data:`CLEANUP_INTERVAL_S` seconds, on waitress's I/O thread)."""
    idle_check = listener.maintenance

    def maintenance(now):
        idle_check(now)
        close_slow_requests(list(listener.active_channels.values()), time.monotonic())

    listener.maintenance = maintenance


class BackgroundServer:
    """The app on waitress in a background thread, for tests and benchmarks::

        with BackgroundServer(app) as srv:
            urlopen(srv.url + "api/health")
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, threads: int | None = None):
        self.server = make_server(app, host, port, threads)
        self.url = url_of(self.server)
        self._thread = threading.Thread(target=self.server.run, name="braintumor-web", daemon=True)

    def __enter__(self) -> "BackgroundServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        from waitress import wasyncore

        srv = self.server
        if self._thread.is_alive():
            # Close every socket from the server's own loop thread; the loop ends when none is left.
            try:
                srv.trigger.pull_trigger(lambda: wasyncore.close_all(srv._map))
            except OSError:  # the loop is already closing its sockets, the trigger among them
                pass
            self._thread.join(10)
        srv.task_dispatcher.shutdown()


def url_of(server) -> str:
    host = server.effective_host
    host = f"[{host}]" if ":" in str(host) else host
    return f"http://{host}:{server.effective_port}/"


def warm_up(predictor) -> None:
    """One explanation of a blank image, so that the first person's request is not the slow one
    (lazy imports, first-call allocations)."""
    from PIL import Image

    size = predictor.preprocessing.img_size
    predictor.explain(Image.new("L", (size, size)))
