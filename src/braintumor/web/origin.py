"""Only the page's own origin may post: every request that changes state or costs work (any method
but GET, HEAD and OPTIONS) must name an allowed host and come from the same origin.

* ``Host`` must be one of the allowed host names (``ALLOWED_HOSTS``: this machine's names by
  default, more with ``braintumor serve --allowed-host NAME``, ``*`` for any). A page on another
  site that makes its own name resolve to this machine (DNS rebinding) sends its own name, and is
  refused.
* A browser says where a request comes from: ``Sec-Fetch-Site`` where it sends it (it must be
  ``same-origin``, or ``none`` for a user's own action), else ``Origin``, else ``Referer``; the
  origin must be the one the request was sent to (scheme aside: a TLS proxy in front is fine).
  ``Origin: null`` (a sandboxed frame, a file) is refused. A request that names no origin at all
  comes from a program (curl, Python), not from a page, and is answered.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, current_app, request

from .forms import ApiError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOCAL_NAMES = ("127.0.0.1", "localhost", "::1")
DEFAULT_PORTS = {"http": 80, "https": 443}


def init_app(app: Flask) -> None:
    app.before_request(check_request)


def allowed_hosts() -> tuple[str, ...]:
    return tuple(h.lower() for h in (current_app.config.get("ALLOWED_HOSTS") or LOCAL_NAMES))


def host_and_port(netloc: str) -> tuple[str, int | None]:
    """('name', port or None) of a Host header or an origin's netloc; ValueError when unreadable."""
    u = urlsplit("//" + netloc)
    if not u.hostname or u.username is not None:
        raise ValueError(netloc)
    return u.hostname.lower(), u.port


def same_origin(url: str, host: str) -> bool:
    """Whether ``url`` (an Origin or a Referer) is the origin of a request sent to ``host``."""
    u = urlsplit(url)
    if u.scheme not in DEFAULT_PORTS or not u.netloc:
        return False
    try:
        name, port = host_and_port(u.netloc)
        host_name, host_port = host_and_port(host)
    except ValueError:
        return False
    if port == DEFAULT_PORTS[u.scheme]:
        port = None
    return name == host_name and port == host_port


def check_request() -> None:
    if request.method in SAFE_METHODS:
        return
    host = request.headers.get("Host", "")
    try:
        name, _ = host_and_port(host)
    except ValueError:
        raise ApiError(400, "the request's Host header cannot be read") from None
    allowed = allowed_hosts()
    if "*" not in allowed and name not in allowed:
        raise ApiError(403, "this server does not answer for the host the request names; it answers for "
                            f"{', '.join(allowed)} (start it with --allowed-host NAME to add a name)")
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        if site.lower() not in ("same-origin", "none"):
            raise ApiError(403, "cross-site request refused: only this service's own page may post to it")
        return
    for header in ("Origin", "Referer"):
        value = request.headers.get(header)
        if value is not None:
            if not same_origin(value, host):
                raise ApiError(403, f"cross-site request refused: the {header} header is not this "
                                    "service's own page")
            return
