"""``braintumor serve``: the web app and JSON API on waitress (:mod:`braintumor.web.serve`). Binds to
127.0.0.1 unless told otherwise; says where it listens and which model it serves."""

from __future__ import annotations

import argparse
import logging
import re
import socket
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


def host_name(text: str) -> str:
    """A host name or address for --allowed-host (no scheme, no port), or ``*``."""
    name = text.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]  # a bracketed IPv6 address
    if name == "*" or re.fullmatch(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?", name) or (
            ":" in name and re.fullmatch(r"[0-9a-f:.]{2,45}", name)):
        return name
    raise argparse.ArgumentTypeError(f"not a host name: {text[:60]!r} (give a name or address without "
                                     "scheme or port, e.g. ai.hospital.example)")


WILDCARDS = ("0.0.0.0", "::", "")


def allowed_hosts(host: str, extra: list[str] | None) -> list[str]:
    """The names a browser may use for this server: this machine's own (127.0.0.1, localhost, ::1),
    the listening address unless it is a wildcard (where the machine's host name is added), and
    ``extra``."""
    from ..web.origin import LOCAL_NAMES

    names = list(LOCAL_NAMES)
    if host in WILDCARDS:
        names.append(socket.gethostname().lower())
    else:
        names.append(host.lower().strip("[]"))
    names += extra or []
    return list(dict.fromkeys(n for n in names if n))


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=port_number, default=5000, help="port (default: 5000; 0: any free port)")
    p.add_argument("--model", action="append", default=None, metavar="FILE",
                   help="checkpoint to serve; repeat for an ensemble (default: the shipped model)")
    p.add_argument("--workers", type=positive, default=None,
                   help="scans analysed at once (default: the cores this process may use)")
    p.add_argument("--queue", type=positive, default=None,
                   help="scans waiting for a worker before a 503 Busy answer (default: 16)")
    p.add_argument("--allowed-host", action="append", default=None, metavar="NAME", type=host_name,
                   help="a host name browsers reach this server by (repeatable; default: this machine's "
                        "names and the --host address); '*' turns the check off")
    p.add_argument("--index", default=None, metavar="FILE",
                   help="similar-case index for the (first) model (default: the one shipped for the shipped model)")
    p.add_argument("--feedback", default=None, metavar="DB",
                   help="collect corrections in this SQLite file (created if missing); the page then asks "
                        "'Was this right?'. Off by default; scans are kept only with consent")


def run(args: argparse.Namespace) -> int:
    from ..web.serve import make_server, url_of, warm_up
    from ..web.work import gate
    from ..errors import UsageError
    from ..web import EXTENSION, create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # waitress warns whenever a request waits for a thread; here requests wait in the work gate's
    # queue by design, and a full queue is answered with 503 (braintumor.web.work)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    from ..inference.feedback import FeedbackError

    try:
        app = create_app({"MODEL_PATHS": args.model, "FEEDBACK_DB": args.feedback, "WORKERS": args.workers,
                          "QUEUE": args.queue, "ALLOWED_HOSTS": allowed_hosts(args.host, args.allowed_host)})
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
        server = make_server(app, args.host, args.port)
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    warm_up(p)
    work = gate(app)
    print(f"braintumor: serving model {p.name} (version {p.version}, sha256 {str(p.sha256)[:12]}) "
          f"with {work.workers} workers and a queue of {work.queue}", file=sys.stderr)
    print(f"braintumor: listening on {url_of(server)}  (Ctrl+C to stop)", file=sys.stderr)
    print(f"braintumor: answers posts for the hosts {', '.join(app.config['ALLOWED_HOSTS'])} "
          "(--allowed-host NAME adds one)", file=sys.stderr)
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
