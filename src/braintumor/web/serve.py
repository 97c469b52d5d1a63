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

from . import MAX_UPLOAD_BYTES
from .headers import security_headers

# Waitress refuses bodies over this before the app sees them (and closes the connection while the
# client may still be sending, which a browser shows as a reset); between the app's 16 MB limit and
# this, the app reads the body and answers the 413 with its message.
MAX_BODY_BYTES = 2 * MAX_UPLOAD_BYTES
MAX_HEADER_BYTES = 64 * 1024
CONNECTION_LIMIT = 256
CHANNEL_TIMEOUT_S = 30
CLEANUP_INTERVAL_S = 5

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

    class JsonErrorChannel(HTTPChannel):
        error_task_class = JsonErrorTask

    return JsonErrorChannel


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
    return server


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
