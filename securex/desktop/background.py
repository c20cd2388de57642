"""The desktop app's errand thread: the little disk and process work the window needs.

The Tk thread never waits for a disk or another program: checking that a file
can be sent, writing the settings file and opening a folder in the file manager
all run here, one after another, on a thread of our own. Each errand is a
function with no arguments that never touches a widget; what it returns (or the
exception it raised) goes back, with the callback given, through a bounded
queue that the app's pump drains on the Tk thread (``deliver``), where the
callback runs.

Both queues are bounded. ``submit`` never blocks: when ERRANDS are already
waiting it returns False and the caller says so. The thread waits while the
results queue is full, so a window that stops pumping slows it down rather than
growing memory. ``stop`` lets the errands already asked for run (a settings file
is still written when the window closes at once after a change) without
delivering their results; ``join`` waits, for a bounded time, until they have.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

ERRANDS = 100        # errands waiting at most
STOP_WAIT = 0.25     # seconds between checks of the stop flag while a queue is full or empty


@dataclass(frozen=True)
class _Errand:
    work: Callable[[], Any]
    done: Callable[[Any], None]


class Background:
    """One daemon thread running errands in order. ``deliver`` runs on the Tk thread."""

    def __init__(self, name: str = "securex desktop errands") -> None:
        self._errands: queue.Queue[_Errand] = queue.Queue(maxsize=ERRANDS)
        self._results: queue.Queue[tuple[Callable[[Any], None], Any]] = queue.Queue(maxsize=ERRANDS)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, work: Callable[[], Any], done: Callable[[Any], None]) -> bool:
        """Run ``work()`` on the errand thread, then ``done(result)`` on the Tk thread.
        ``result`` is an exception instance if ``work`` raised one. False if too many
        errands are waiting (nothing was queued)."""
        try:
            self._errands.put_nowait(_Errand(work, done))
        except queue.Full:
            return False
        return True

    def deliver(self, limit: int) -> int:
        """Run the callbacks of up to ``limit`` finished errands (Tk thread); how many ran."""
        handled = 0
        while handled < limit:
            try:
                done, result = self._results.get_nowait()
            except queue.Empty:
                break
            handled += 1
            done(result)
        return handled

    @property
    def idle(self) -> bool:
        """Nothing waiting to run or to be delivered (tests wait for this)."""
        return self._errands.unfinished_tasks == 0 and self._results.empty()

    def stop(self) -> None:
        """Nobody will read results any more: run what was asked, then end. Never blocks."""
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._errands.put_nowait(_Errand(lambda: None, lambda result: None))   # wakes the thread now

    def join(self, timeout: float) -> bool:
        """After ``stop``: wait up to ``timeout`` seconds for the errands to be done; True if they were."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            try:
                errand = self._errands.get(timeout=STOP_WAIT)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            try:
                result = errand.work()
            except Exception as error:   # handed to the callback: the Tk side decides what to say
                log.debug("errand failed", exc_info=True)
                result = error
            while not self._stop.is_set():
                with contextlib.suppress(queue.Full):
                    self._results.put((errand.done, result), timeout=STOP_WAIT)
                    break
            self._errands.task_done()
            if self._stop.is_set() and self._errands.empty():
                return
