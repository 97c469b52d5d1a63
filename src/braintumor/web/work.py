"""Heavy work runs on a bounded number of worker threads behind a bounded queue, under a memory budget.

Decoding an upload and answering it (the model, the heat map, the PDF) is the only heavy work the
service does. :class:`WorkGate` runs it on ``workers`` threads of its own (about the number of
cores: more would only share them; and a few threads keep the memory the allocator holds for them
few) and lets at most ``queue`` more requests wait for one; a request past that, or one that waited
``wait_s`` seconds, is answered at once with 503 and ``Retry-After``. The server gives waitress
more threads than the gate ever admits (:func:`request_threads`), so health checks, the page and
the refusals themselves never wait behind heavy requests.

On the workers, uploads are read under the service's budget (:data:`braintumor.limits.SERVICE`):
a pixel, aspect and memory limit checked from each file's header before it is decoded.
"""

from __future__ import annotations

import functools
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

from flask import copy_current_request_context, current_app

from .. import limits
from .forms import ApiError

GATE = "braintumor.work"  # key in app.extensions
DEFAULT_QUEUE = 16  # requests waiting for a worker: twice the load benchmark's 8 clients
DEFAULT_WAIT_S = 30.0  # longest wait for a worker before a 503
LIGHT_THREADS = 4  # request threads beyond what the gate admits: health, page, refusals

T = TypeVar("T")


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
    """At most ``workers`` heavy jobs at once, on threads of their own; at most ``queue`` more waiting."""

    def __init__(self, workers: int, queue: int, wait_s: float = DEFAULT_WAIT_S):
        if workers < 1 or queue < 0:
            raise ValueError("a work gate needs at least one worker and a queue of 0 or more")
        self.workers, self.queue, self.wait_s = int(workers), int(queue), float(wait_s)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="braintumor-worker")
        self._lock = threading.Lock()
        self._admitted = 0  # running + waiting
        self._running = 0
        self._mean_s = 1.0  # moving average of one heavy job's time, for Retry-After

    @property
    def capacity(self) -> int:
        return self.workers + self.queue

    def status(self) -> dict:
        with self._lock:
            return {"workers": self.workers, "queue": self.queue, "running": self._running,
                    "waiting": self._admitted - self._running}

    def retry_after(self) -> int:
        """Seconds until the queue has likely moved on: its length times one job's time, over the
        workers (1 to 60)."""
        return int(min(60, max(1, math.ceil(self.capacity * self._mean_s / self.workers))))

    def run(self, job: Callable[[], T]) -> T:
        """``job()`` on a worker, its result or its exception; :class:`Busy` at once when the queue
        is full, or when no worker took the job within ``wait_s`` seconds."""
        with self._lock:
            if self._admitted >= self.capacity:
                raise Busy(f"the server is busy ({self.workers} scans being analysed, {self.queue} "
                           "waiting); try again in a few seconds", self.retry_after())
            self._admitted += 1
        try:
            started = threading.Event()
            future = self._pool.submit(self._timed, job, started)
            if not started.wait(self.wait_s) and future.cancel():
                raise Busy(f"the server is busy: no worker was free within {self.wait_s:.0f} s; "
                           "try again in a few seconds", self.retry_after())
            return future.result()
        finally:
            with self._lock:
                self._admitted -= 1

    def _timed(self, job: Callable[[], T], started: threading.Event) -> T:
        with self._lock:
            self._running += 1
        started.set()
        start = time.monotonic()
        try:
            return job()
        finally:
            with self._lock:
                self._running -= 1
                self._mean_s = 0.8 * self._mean_s + 0.2 * (time.monotonic() - start)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


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


def run_heavy(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` as heavy work of the current request: on a worker (with this
    request's context), under the app's budget."""
    budget = current_app.config["BUDGET"]

    @copy_current_request_context
    def job() -> T:
        with limits.budget(budget):
            return fn(*args, **kwargs)

    return gate().run(job)


def heavy(view: Callable[..., T]) -> Callable[..., T]:
    """A view whose whole work is heavy (:func:`run_heavy`)."""
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> T:
        return run_heavy(view, *args, **kwargs)

    return wrapped
