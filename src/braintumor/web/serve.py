"""The web app on waitress, a production WSGI server (the ``braintumor serve`` command is
:mod:`braintumor.commands.serve`).

Request bodies stay in memory (waitress would otherwise buffer bodies over 512 KB in a temporary
file) and no ``Server`` banner is sent.
"""

from __future__ import annotations

import threading

from . import MAX_UPLOAD_BYTES

# Waitress refuses bodies over this before the app sees them (plain-text 413); between the app's
# 16 MB limit and this, the app answers the 413 in JSON.
MAX_BODY_BYTES = 2 * MAX_UPLOAD_BYTES


def make_server(app, host: str = "127.0.0.1", port: int = 0, threads: int = 4):
    """A waitress server for ``app`` (not yet running): ``server.run()`` serves until
    ``server.close()``; ``server.effective_port`` is the port it got."""
    from waitress import create_server

    return create_server(
        app, host=host, port=port, threads=threads,
        ident="",  # no Server banner
        max_request_body_size=MAX_BODY_BYTES,
        inbuf_overflow=MAX_BODY_BYTES + 1,  # bodies stay in memory, never in a temporary file
        clear_untrusted_proxy_headers=True,
    )


class BackgroundServer:
    """The app on waitress in a background thread, for tests and benchmarks::

        with BackgroundServer(app) as srv:
            urlopen(srv.url + "api/health")
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, threads: int = 4):
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
