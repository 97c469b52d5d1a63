"""Heavy work runs on a bounded number of workers behind a bounded queue, under a memory budget.

Decoding an upload and answering it (the model, the heat map, the PDF) is the only heavy work the
service does. :class:`WorkGate` lets at most ``workers`` requests do it at once (about the number
of cores: more would only share them) and at most ``queue`` more wait for a worker; a request past
that, or one that waited ``wait_s`` seconds, is answered at once with 503 and ``Retry-After``. The
server gives waitress more threads than the gate ever admits (:func:`request_threads`), so health
checks, the page and the refusals themselves never wait behind heavy requests.

Inside the gate, uploads are read under the service's budget (:data:`braintumor.limits.SERVICE`):
a pixel, aspect and memory limit checked from each file's header before it is decoded.
"""

from __future__ import annotations

import math
import os
import threading
import time
from contextlib import contextmanager
from typing import Iterator

from flask import current_app

from .. import limits
from .forms import ApiError

GATE = "braintumor.work"  # key in app.extensions
DEFAULT_QUEUE = 16  # requests waiting for a worker: twice the load benchmark's 8 clients
DEFAULT_WAIT_S = 30.0  # longest wait for a worker before a 503
LIGHT_THREADS = 4  # request threads beyond what the gate admits: health, page, refusals


def default_workers() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class Busy(ApiError):
    """No worker is free and the queue is full (or the wait was too long): 503, Retry-After."""

    def __init__(self, message: str, retry_after_s: int):
        super().__init__(503, message)
        self.headers = {"Retry-After": str(retry_after_s)}


class WorkGate:
    """At most ``workers`` heavy requests at once, at most ``queue`` more waiting."""

    def __init__(self, workers: int, queue: int, wait_s: float = DEFAULT_WAIT_S):
        if workers < 1 or queue < 0:
            raise ValueError("a work gate needs at least one worker and a queue of 0 or more")
        self.workers, self.queue, self.wait_s = int(workers), int(queue), float(wait_s)
        self._slots = threading.Semaphore(self.workers)
        self._lock = threading.Lock()
        self._admitted = 0  # running + waiting
        self._running = 0
        self._mean_s = 1.0  # moving average of one heavy request's time, for Retry-After

    @property
    def capacity(self) -> int:
        return self.workers + self.queue

    def status(self) -> dict:
        with self._lock:
            return {"workers": self.workers, "queue": self.queue, "running": self._running,
                    "waiting": self._admitted - self._running}

    def retry_after(self) -> int:
        """Seconds until the queue has likely moved on: its length times one request's time, over
        the workers (1 to 60)."""
        return int(min(60, max(1, math.ceil(self.capacity * self._mean_s / self.workers))))

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Run the ``with`` block on a worker, or raise :class:`Busy` at once when the queue is full."""
        with self._lock:
            if self._admitted >= self.capacity:
                raise Busy(f"the server is busy ({self.workers} scans being analysed, {self.queue} "
                           "waiting); try again in a few seconds", self.retry_after())
            self._admitted += 1
        try:
            if not self._slots.acquire(timeout=self.wait_s):
                raise Busy(f"the server is busy: no worker was free within {self.wait_s:.0f} s; "
                           "try again in a few seconds", self.retry_after())
            start = time.monotonic()
            with self._lock:
                self._running += 1
            try:
                yield
            finally:
                with self._lock:
                    self._running -= 1
                    self._mean_s = 0.8 * self._mean_s + 0.2 * (time.monotonic() - start)
                self._slots.release()
        finally:
            with self._lock:
                self._admitted -= 1


def init_app(app) -> None:
    cfg = app.config
    app.extensions[GATE] = WorkGate(int(cfg.get("WORKERS") or default_workers()),
                                    int(cfg["QUEUE"] if cfg.get("QUEUE") is not None else DEFAULT_QUEUE),
                                    float(cfg.get("QUEUE_WAIT_S") or DEFAULT_WAIT_S))


def gate(app=None) -> WorkGate:
    return (app or current_app).extensions[GATE]


def request_threads(app) -> int:
    """Waitress threads for ``app``: every request the gate admits, and :data:`LIGHT_THREADS` more."""
    return gate(app).capacity + LIGHT_THREADS


@contextmanager
def heavy() -> Iterator[None]:
    """Heavy work of the current request: on a worker, under the app's budget."""
    with gate().admit(), limits.budget(current_app.config["BUDGET"]):
        yield
