"""Opt-in feedback: corrections of the model's answers, kept in one SQLite file.

A row holds what is needed to learn from a correction and nothing that names a person: the time,
the model (name, version, SHA-256), the predicted and the corrected class, the probabilities, the
decision, an optional comment, the SHA-256 of the uploaded bytes and, only when the person ticked
"keep this scan", the image's pixels as a PNG that the server encodes from the decoded pixels (so
no DICOM header, EXIF block or file name can travel with it).

The database runs in WAL mode (readers never wait for the writer, and a killed process leaves a
readable file); every write is one short transaction on a connection of its own, with a busy
timeout, so many request threads can post at once. The schema carries a version
(``PRAGMA user_version``) and is brought up to date by the ordered ``MIGRATIONS`` when the server
opens it (:func:`connect`).

One correction per answer: a later correction of the same answer replaces the earlier one (the
person changed their mind; without ``keep_image`` the pixels kept before are dropped too).

The reading tools (``braintumor feedback list|stats|export``) open the file read-only
(:func:`open_readonly`, SQLite's ``mode=ro``): they never migrate, never switch a file to WAL and
never write, so a file they refuse (empty, another program's database) is left exactly as it was.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from threading import Lock
from typing import Iterator, Sequence

from PIL import Image

from ..errors import FeedbackError
from ..config import CLASSES

MAX_COMMENT = 2000  # characters; longer comments are refused, not cut
BUSY_TIMEOUT_S = 30.0

# Each entry brings the schema from version i to i + 1; never edit one that has shipped.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE feedback (
        id            INTEGER PRIMARY KEY,
        created       TEXT NOT NULL,            -- ISO 8601, UTC
        answer_id     TEXT NOT NULL,
        model_name    TEXT NOT NULL,
        model_version TEXT NOT NULL,
        model_sha256  TEXT NOT NULL,
        predicted     TEXT NOT NULL,
        corrected     TEXT NOT NULL,
        probabilities TEXT NOT NULL,            -- JSON object, class -> probability
        comment       TEXT NOT NULL DEFAULT '',
        image_sha256  TEXT NOT NULL,
        image_png     BLOB                      -- only with consent
    );
    """,
    """
    ALTER TABLE feedback ADD COLUMN decision TEXT NOT NULL DEFAULT '';
    CREATE INDEX feedback_model ON feedback (model_sha256);
    CREATE INDEX feedback_image ON feedback (image_sha256);
    """,
    """
    DELETE FROM feedback WHERE id NOT IN (SELECT max(id) FROM feedback GROUP BY answer_id);
    CREATE UNIQUE INDEX feedback_answer ON feedback (answer_id);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def connect(path: str | Path) -> sqlite3.Connection:
    """A connection to the feedback database at ``path`` with the schema brought up to date."""
    path = Path(path)
    if path.is_dir():
        raise FeedbackError(f"{path} is a folder; give the path of a database file")
    if path.parent and not path.parent.exists():
        raise FeedbackError(f"no such folder for the feedback database: {path.parent}")
    con = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None,
                          check_same_thread=False)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")  # safe with WAL: a crash loses no committed row
        migrate(con)
    except sqlite3.DatabaseError as exc:
        con.close()
        raise FeedbackError(f"{path} is not a feedback database ({exc})") from None
    return con


def migrate(con: sqlite3.Connection) -> int:
    """Apply the migrations the database lacks, each in its own transaction; the new version."""
    version = con.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise FeedbackError(f"the database has schema version {version}, newer than this software's "
                            f"{SCHEMA_VERSION}; upgrade braintumor")
    if version == 0 and con.execute(
            "SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()[0]:
        raise FeedbackError("the file is an SQLite database of something else")
    if version > 0 and not _has_feedback_table(con):
        raise FeedbackError("the file is an SQLite database of something else")
    while version < SCHEMA_VERSION:
        con.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated meanwhile: re-read under the write lock.
            if con.execute("PRAGMA user_version").fetchone()[0] == version:
                for statement in _statements(MIGRATIONS[version]):
                    con.execute(statement)
                con.execute(f"PRAGMA user_version = {version + 1}")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        version = con.execute("PRAGMA user_version").fetchone()[0]
    return version


SQLITE_MAGIC = b"SQLite format 3\x00"


def _has_feedback_table(con: sqlite3.Connection) -> bool:
    return bool(con.execute("SELECT count(*) FROM sqlite_master WHERE type='table' AND name='feedback'")
                .fetchone()[0])


def open_readonly(path: str | Path) -> sqlite3.Connection:
    """A read-only connection to an existing feedback database (SQLite ``mode=ro``). An empty file,
    a file that is not SQLite, another program's database or one from a newer release is a
    FeedbackError, and nothing is written to any of them."""
    path = Path(path)
    if not path.is_file():
        raise FeedbackError(f"no such feedback database: {path}")
    try:
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise FeedbackError(f"{path} cannot be read ({exc.strerror or exc})") from None
    if not head:
        raise FeedbackError(f"{path} is an empty file, not a feedback database")
    if head != SQLITE_MAGIC:
        raise FeedbackError(f"{path} is not a feedback database (not an SQLite file)")
    con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S,
                          isolation_level=None, check_same_thread=False)
    try:
        version = con.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise FeedbackError(f"{path} has schema version {version}, newer than this software's "
                                f"{SCHEMA_VERSION}; upgrade braintumor")
        if version < 1 or not _has_feedback_table(con):
            raise FeedbackError(f"{path} is an SQLite database of something else, not a feedback database")
    except sqlite3.DatabaseError as exc:
        con.close()
        raise FeedbackError(f"{path} is not a feedback database ({exc})") from None
    except FeedbackError:
        con.close()
        raise
    return con


def _statements(script: str) -> list[str]:
    """The statements of a migration (``executescript`` would commit mid-transaction)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


@dataclass(frozen=True)
class Answer:
    """What the server remembers of an answer until feedback on it arrives: no pixels."""

    answer_id: str
    model_name: str
    model_version: str
    model_sha256: str
    predicted: str
    decision: str
    probabilities: dict
    image_sha256: str
    created: float
    slice_index: int | None = None  # the slice of a volume that was classified


class RecentAnswers:
    """The answers of the last ``ttl_s`` seconds (at most ``limit``), so that feedback can refer to
    one by its id. Only summaries are kept: the image's hash, never the image."""

    def __init__(self, limit: int = 10000, ttl_s: float = 24 * 3600.0):
        self.limit, self.ttl_s = limit, ttl_s
        self._items: OrderedDict[str, Answer] = OrderedDict()
        self._lock = Lock()

    def add(self, answer: Answer) -> None:
        with self._lock:
            self._items[answer.answer_id] = answer
            while len(self._items) > self.limit:
                self._items.popitem(last=False)

    def get(self, answer_id: str) -> Answer | None:
        now = time.time()
        with self._lock:
            while self._items:
                oldest = next(iter(self._items.values()))
                if now - oldest.created <= self.ttl_s:
                    break
                self._items.popitem(last=False)
            item = self._items.get(answer_id)
        return item if item is not None and now - item.created <= self.ttl_s else None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def png_bytes(image: Image.Image) -> bytes:
    """The decoded pixels as a PNG with no metadata (8-bit grey or RGB)."""
    img = image if image.mode in ("L", "RGB") else image.convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format="PNG")  # PIL writes no text chunks unless given pnginfo
    return buf.getvalue()


NOT_A_CLASS = ("unsure", "not-mri")  # "not sure", "not a brain MRI slice": answers that name no class


def record(con: sqlite3.Connection, answer: Answer, corrected: str, comment: str = "",
           image: Image.Image | None = None, classes: Sequence[str] = CLASSES) -> int:
    """Store the correction of an answer; ``image`` only with the person's consent. A correction
    of an answer corrected before replaces the earlier one (in the same row). Returns the row id."""
    if corrected not in (*classes, *NOT_A_CLASS):
        raise FeedbackError(f"unknown class {corrected[:40]!r}; choose one of {', '.join((*classes, *NOT_A_CLASS))}")
    if len(comment) > MAX_COMMENT:
        raise FeedbackError(f"the comment is longer than {MAX_COMMENT} characters")
    png = png_bytes(image) if image is not None else None
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    cur = con.execute(
        "INSERT INTO feedback (created, answer_id, model_name, model_version, model_sha256, predicted,"
        " corrected, probabilities, comment, image_sha256, image_png, decision)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (answer_id) DO UPDATE SET created = excluded.created, corrected = excluded.corrected,"
        " comment = excluded.comment, image_png = excluded.image_png"
        " RETURNING id",
        (created, answer.answer_id, answer.model_name, answer.model_version, answer.model_sha256,
         answer.predicted, corrected, json.dumps(answer.probabilities), comment, answer.image_sha256,
         png, answer.decision))
    return int(cur.fetchone()[0])


# The latest correction of each answer: what every reading counts (a database written before one
# correction per answer was enforced, and opened read-only, may still hold earlier ones).
LATEST = "SELECT * FROM feedback WHERE id IN (SELECT max(id) FROM feedback GROUP BY answer_id)"


def _columns(con: sqlite3.Connection) -> set[str]:
    return {row[1] for row in con.execute("PRAGMA table_info(feedback)")}


def rows(con: sqlite3.Connection) -> Iterator[dict]:
    """The correction of each answer without the pixels, oldest first; ``has_image`` says whether
    pixels were kept."""
    decision = "decision" if "decision" in _columns(con) else "''"  # schema version 1 had none
    cur = con.execute(
        f"SELECT id, created, model_name, model_version, model_sha256, predicted, corrected, {decision},"
        f" probabilities, comment, image_sha256, image_png IS NOT NULL FROM ({LATEST}) ORDER BY id")
    keys = ("id", "created", "model_name", "model_version", "model_sha256", "predicted", "corrected",
            "decision", "probabilities", "comment", "image_sha256", "has_image")
    for row in cur:
        item = dict(zip(keys, row))
        item["probabilities"] = json.loads(item["probabilities"])
        item["has_image"] = bool(item["has_image"])
        yield item


def stats(con: sqlite3.Connection) -> dict:
    """Agreement (predicted == corrected) by corrected class and by model, one count per answer."""
    def table(key: str) -> list[dict]:
        out = []
        for value, n, agree, kept in con.execute(
                f"SELECT {key}, count(*), sum(predicted = corrected), sum(image_png IS NOT NULL)"
                f" FROM ({LATEST}) GROUP BY {key} ORDER BY {key}"):
            out.append({key: value, "n": n, "agreed": agree, "agreement": agree / n, "images_kept": kept})
        return out

    n, agree = con.execute(f"SELECT count(*), coalesce(sum(predicted = corrected), 0) FROM ({LATEST})").fetchone()
    return {"n": n, "agreed": agree, "agreement": (agree / n) if n else None,
            "by_class": table("corrected"),
            "by_model": [dict(r, model=_model_name(con, r["model_sha256"])) for r in table("model_sha256")]}


def _model_name(con: sqlite3.Connection, sha: str) -> str:
    name, version = con.execute("SELECT model_name, model_version FROM feedback WHERE model_sha256 = ?"
                                " LIMIT 1", (sha,)).fetchone()
    return f"{name} {version}"


def export(con: sqlite3.Connection, out: str | Path, classes: Sequence[str] = CLASSES) -> dict[str, int]:
    """Write the images kept with consent into ``out/<corrected class>/`` (a folder that
    ``evaluate`` and ``finetune`` read as a labelled data set; ``train`` too once every class has
    images). ``out`` must be new or empty: an export never mixes with older files. Each scan is
    written once, under the class of its latest correction. The folder is built beside ``out`` and
    renamed into place when complete, so a failed export leaves nothing behind. Returns the count
    per class."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FeedbackError(f"{out} is a file; export into a new or empty folder")
    if out.is_dir() and any(out.iterdir()):
        raise FeedbackError(f"{out} is not empty; export into a new or empty folder (an export never "
                            "mixes with the files of an earlier one)")
    latest: dict[str, str] = {}  # image -> class of its latest correction
    pixels: dict[str, bytes] = {}  # image -> its kept pixels
    for sha, corrected, png in con.execute(
            f"SELECT image_sha256, corrected, image_png FROM ({LATEST}) ORDER BY created, id"):
        if corrected in NOT_A_CLASS:  # no class to file it under
            latest.pop(sha, None), pixels.pop(sha, None)
            continue
        latest[sha] = corrected
        if png is not None:
            pixels[sha] = png
    unknown = sorted({c for sha, c in latest.items() if sha in pixels and c not in classes})
    if unknown:
        raise FeedbackError(f"the database names classes this model does not have: {', '.join(map(repr, unknown))}")
    counts = {c: 0 for c in classes}
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise FeedbackError(f"no such folder: {parent}")
    staging = parent / f".{out.name}.export-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        for sha, png in pixels.items():
            folder = staging / latest[sha]
            folder.mkdir(exist_ok=True)  # only classes with images get a folder
            (folder / f"feedback-{sha[:16]}.png").write_bytes(png)
            counts[latest[sha]] += 1
        os.replace(staging, out)  # an empty folder is replaced; POSIX renames are atomic
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return counts
