"""``braintumor serve``: the web app and JSON API on waitress (:mod:`braintumor.web.serve`). Binds to
127.0.0.1 unless told otherwise; says where it listens and which model it serves."""

from __future__ import annotations

import argparse
import logging
import sys


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


def run(args: argparse.Namespace) -> int:
    from ..web.serve import make_server, url_of, warm_up
    from ..errors import UsageError
    from ..web import EXTENSION, create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from ..feedback import FeedbackError

    try:
        app = create_app({"MODEL_PATHS": args.model, "FEEDBACK_DB": args.feedback})
    except FeedbackError as exc:
        raise UsageError(f"--feedback {args.feedback}: {exc}") from None
    p = app.extensions[EXTENSION]
    if p.backend != "torch":
        from ..inference.backends import give_cores_to_onnx

        give_cores_to_onnx()
    if args.index:
        from ..inference.similar import CaseIndexError

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
