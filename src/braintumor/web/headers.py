"""The security headers every answer carries: the app's own answers and the few that waitress
writes itself (a request it cannot read, a body or header block over its limits)."""

from __future__ import annotations

# Only the app's own origin; data: and blob: images are the answers and the local preview.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # The page's own requests carry their origin (which the API checks); no other site is told
    # anything, and the page fetches nothing from any other site.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def security_headers(path: str) -> dict[str, str]:
    """The headers for an answer to ``path``; API answers describe a patient's scan and are not
    stored by any cache."""
    headers = dict(SECURITY_HEADERS)
    if path.startswith("/api/"):
        headers["Cache-Control"] = "no-store"
    return headers
