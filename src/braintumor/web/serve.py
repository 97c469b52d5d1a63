"""``braintumor serve``: the web app on waitress, a production WSGI server.

Binds to 127.0.0.1 unless told otherwise; says where it listens and which model it serves.
Request bodies stay in memory (waitress would otherwise buffer bodies over 512 KB in a temporary
file) and no ``Server`` banner is sent.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading

from . import MAX_UPLOAD_BYTES

# Waitress refuses bodies over this before the app sees them (plain-text 413); between the app's
# 16 MB limit and this, the app answers the 413 in JSON.
MAX_BODY_BYTES = 2 * MAX_UPLOAD_BYTES


def port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is between 0 and 65535, not {port}")
    return port


def positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {n}")
    return n


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=port_number, default=5000, help="port (default: 5000; 0: any free port)")
    p.add_argument("--model", action="append", default=None, metavar="FILE",
                   help="checkpoint to serve; repeat for an ensemble (default: the shipped model)")
    p.add_argument("--threads", type=positive, default=4, help="request threads (default: 4)")
    p.add_argument("--index", default=None, metavar="FILE",
                   help="similar-case index for the (first) model (default: the one shipped for the shipped model)")
    p.add_argument("--feedback", default=None, metavar="DB",
                   help="collect corrections in this SQLite file (created if missing); the page then asks "
                        "'Was this right?'. Off by default; scans are kept only with consent")


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


def run(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from . import EXTENSION, create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from ..feedback import FeedbackError

    try:
        app = create_app({"MODEL_PATHS": args.model, "FEEDBACK_DB": args.feedback})
    except FeedbackError as exc:
        raise UsageError(f"--feedback {args.feedback}: {exc}") from None
    p = app.extensions[EXTENSION]
    if args.index:
        from ..similar import CaseIndexError

        try:
            p.attach_index(args.index)
        except CaseIndexError as exc:
            raise UsageError(f"--index: {exc}") from None
    try:
        server = make_server(app, args.host, args.port, args.threads)
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    warm_up(p)
    print(f"braintumor: serving model {p.name} (version {p.version}, sha256 {str(p.sha256)[:12]}) "
          f"with {args.threads} threads", file=sys.stderr)
    print(f"braintumor: listening on {url_of(server)}  (Ctrl+C to stop)", file=sys.stderr)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"braintumor: warning: {args.host} may be reachable from other machines and the app has no "
              "login; put it behind a reverse proxy with access control", file=sys.stderr)
    if args.feedback:
        print(f"braintumor: feedback on, stored in {args.feedback} (scans only with consent)", file=sys.stderr)
    print("braintumor: for research and teaching, not for diagnosis", file=sys.stderr)
    sys.stderr.flush()
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0
