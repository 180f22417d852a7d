"""Admission control for the one model a process holds: one colourisation at a time, a small bounded queue.

The promises are Triton's and TorchServe's: a request that cannot be queued is rejected *at once* (503 with
Retry-After), a request that waited too long without starting is rejected (503), and one that runs too long is
answered 504 while its computation finishes in the background (a torch call cannot be interrupted safely). Health
endpoints never pass through the gate, so they stay fast while it is full. A queued request whose client has
disconnected (``client_gone``) leaves the queue without running the model; one already running finishes.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Callable, TypeVar

T = TypeVar("T")


class Overloaded(Exception):
    """The queue is full, or the request waited longer than the queue timeout (→ 503 + Retry-After)."""

    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class TimedOut(Exception):
    """The colourisation started but did not finish within the request timeout (→ 504)."""


class ClientGone(Exception):
    """The client disconnected while its request waited in the queue; the model was not run for it."""


CLIENT_POLL_S = 0.1
DEFAULT_SECONDS_PER_MEGAPIXEL = 0.5
"""What Retry-After assumes a megapixel of drawing costs before any job has finished (about what a request costs
on the 2-core reference machine, docs/bench); afterwards the median of the recent jobs' own rates is used."""
BASE_COST_MEGAPIXELS = 0.25
"""Cost added to every job: the fixed part (network at its working size, encoding) that does not scale with the
image, in the same units."""


class InferenceGate:
    """Run callables one at a time on a single worker thread, admitting at most ``1 + queue_size`` at once."""

    def __init__(self, queue_size: int, queue_timeout_s: float, request_timeout_s: float):
        self.capacity = 1 + queue_size
        self.queue_timeout_s = queue_timeout_s
        self.request_timeout_s = request_timeout_s
        self._slots = threading.BoundedSemaphore(self.capacity)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="linecolor-infer")
        self._lock = threading.Lock()
        self._admitted = 0
        self._recent_rates: list[float] = []  # seconds per cost unit of the last jobs
        self._running: tuple[float, float] | None = None  # (start time, cost) of the job on the worker
        self._queued_costs: dict[int, float] = {}  # admitted jobs not yet started, by ticket
        self._tickets = itertools.count()

    @property
    def in_flight(self) -> int:
        """Requests admitted and not yet finished (running + queued)."""
        with self._lock:
            return self._admitted

    def _retry_after(self) -> int:
        """Seconds until the jobs now admitted are likely done: what the running one has left plus the queued ones,
        each priced by its cost (megapixels) at the recent seconds-per-megapixel.

        A running job that has already taken longer than its estimate is assumed to need about as long again,
        rather than to end at once: Retry-After must not invite clients back while the queue is still full."""
        with self._lock:
            rates = sorted(self._recent_rates)
            rate = rates[len(rates) // 2] if rates else DEFAULT_SECONDS_PER_MEGAPIXEL
            seconds = rate * sum(self._queued_costs.values())
            if self._running is not None:
                started, cost = self._running
                elapsed, expected = time.perf_counter() - started, rate * cost
                seconds += expected - elapsed if elapsed < expected else elapsed
            return max(1, math.ceil(seconds))

    def run(self, fn: Callable[[], T], client_gone: Callable[[], bool] | None = None, *,
            megapixels: float = 1.0) -> T:
        """Run ``fn`` when its turn comes; ``client_gone()`` (e.g. waitress's ``client_disconnected``) is polled
        while the request waits, and a request whose client has gone is dropped from the queue (:class:`ClientGone`).
        ``megapixels`` is the job's size, what its Retry-After estimate for later requests is priced by."""
        if not self._slots.acquire(blocking=False):
            raise Overloaded(f"the server is busy ({self.capacity} requests already admitted); try again shortly",
                             self._retry_after())
        cost = BASE_COST_MEGAPIXELS + max(0.0, megapixels)
        ticket = next(self._tickets)
        with self._lock:
            self._admitted += 1
            self._queued_costs[ticket] = cost
        started = threading.Event()

        def job() -> T:
            if client_gone is not None and client_gone():
                raise ClientGone("the client disconnected before its turn; the request was dropped")
            started.set()
            t0 = time.perf_counter()
            with self._lock:
                self._queued_costs.pop(ticket, None)
                self._running = (t0, cost)
            try:
                return fn()
            finally:
                with self._lock:
                    rate = (time.perf_counter() - t0) / cost
                    self._recent_rates = (self._recent_rates + [rate])[-20:]
                    self._running = None

        def release(_future: Future) -> None:
            with self._lock:
                self._admitted -= 1
                self._queued_costs.pop(ticket, None)  # cancelled or dropped before it started
            self._slots.release()

        future: Future = self._executor.submit(job)
        future.add_done_callback(release)
        deadline = time.monotonic() + self.queue_timeout_s
        while not started.is_set() and not future.done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if future.cancel():
                    # Cancelled before it started: release already ran through the done callback.
                    raise Overloaded(f"the request waited {self.queue_timeout_s:g} s in the queue without starting",
                                     self._retry_after())
                break
            started.wait(remaining if client_gone is None else min(remaining, CLIENT_POLL_S))
            if client_gone is not None and not started.is_set() and client_gone() and future.cancel():
                raise ClientGone("the client disconnected while its request was queued; the request was dropped")
        try:
            return future.result(timeout=self.request_timeout_s)
        except FutureTimeout:
            raise TimedOut(f"colourisation took longer than {self.request_timeout_s:g} s") from None

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
