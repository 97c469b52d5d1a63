"""Reading the API's form fields: the error type every route raises, and the parsers of booleans,
whole numbers, text and upload suffixes, each failing with a message for a person and a 400.
Messages never echo what the client sent: they say what was expected."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from flask import request

from ..formats import suffix_of

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off"}


class ApiError(Exception):
    """A request the API cannot answer; the message is meant for a person. ``headers`` go with the
    answer (e.g. Retry-After)."""

    headers: dict[str, str] = {}

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


# Characters a text field may not hold: C0 controls other than tab and line breaks, DEL, C1 controls.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def text_field(name: str, value: Any) -> str:
    """A text field, stripped: 400 when it holds a lone surrogate (text that is not Unicode, which
    no file or database can store) or a control character. Nothing of the value is echoed."""
    text = str(value if value is not None else "").strip()
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, f"the field {name!r} holds a lone surrogate (\\ud800-\\udfff), which is not "
                            "text; send it as UTF-8") from None
    if CONTROL.search(text):
        raise ApiError(400, f"the field {name!r} holds a control character; send plain text")
    return text


def truthy(name: str, value: Any, default: bool = False) -> bool:
    """A boolean field: true/false, yes/no, on/off, 1/0 (or a JSON boolean); empty is ``default``."""
    if isinstance(value, bool):
        return value
    raw = str(value if value is not None else "").strip().lower()
    if not raw:
        return default
    if raw in TRUE:
        return True
    if raw in FALSE:
        return False
    raise ApiError(400, f"the field {name!r} must be true or false (or yes/no, on/off, 1/0)")


def flag(name: str, default: bool) -> bool:
    """A boolean form field of the current request."""
    return truthy(name, request.form.get(name), default)


def integer(name: str) -> int | None:
    raw = (request.form.get(name) or "").strip()
    if not raw:
        return None
    if not re.fullmatch(r"[+-]?\d{1,9}", raw):
        raise ApiError(400, f"the field {name!r} must be a whole number of at most 9 digits")
    return int(raw)


def suffix(filename: str) -> str:
    """The accepted suffix of an upload's file name (:func:`braintumor.formats.suffix_of`), or "".

    Only the suffix is passed on to the image reader, which recognises formats by content and uses
    a name only where the content is silent (a DICOM data set without its preamble, a damaged file
    named like a scan); the client's file name itself is never used or logged."""
    return suffix_of(filename)


NAME_MAX = 80  # characters of a client's file name an error message may repeat


def file_name(filename: str | None) -> str:
    """The name an error message uses for an upload: the client's file name reduced to its base
    name (no folder of the client's machine), without control or format characters (no line
    breaks, no bidirectional overrides), cut to :data:`NAME_MAX` characters with its suffix kept;
    "upload" plus the suffix when nothing is left. It goes only into the answer to the client who
    sent it, never into the server's log."""
    raw = str(filename or "").encode("utf-8", "replace").decode("utf-8")
    base = re.split(r"[/\\]", raw)[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] not in "CZ" or ch == " ").strip()
    sfx = suffix_of(base)
    if not base.strip(". ") or base == sfx:
        return "upload" + suffix(raw)
    if len(base) > NAME_MAX:
        keep = sfx if len(sfx) < 12 else ""
        base = base[: NAME_MAX - len(keep) - 3].rstrip() + "..." + keep
    return base
