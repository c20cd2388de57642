"""A private X server for the GUI tests.

``virtual_display()`` starts ``Xvfb -displayfd``, which picks a free display
number itself and writes it to a pipe once the server accepts connections, so
there is no guessing of numbers, no lock-file races and no sleep. The server
is stopped when the context exits.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

START_TIMEOUT = 10.0


def xvfb_available() -> bool:
    return shutil.which("Xvfb") is not None


@contextmanager
def virtual_display(screen: str = "1280x800x24", timeout: float = START_TIMEOUT) -> Iterator[str]:
    """Run Xvfb for the duration of the block; yields its DISPLAY name, e.g. ``:3``."""
    read_fd, write_fd = os.pipe()
    try:
        process = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", screen, "-nolisten", "tcp"],
            pass_fds=(write_fd,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
    finally:
        os.close(write_fd)   # only Xvfb writes; EOF then means it died
    try:
        number = _read_display_number(read_fd, process, timeout)
        yield f":{number}"
    finally:
        os.close(read_fd)
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _read_display_number(fd: int, process: subprocess.Popen, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    received = b""
    while not received.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RuntimeError(f"Xvfb did not report a display within {timeout} s")
        readable, _, _ = select.select([fd], [], [], remaining)
        if readable:
            chunk = os.read(fd, 64)
            if not chunk:
                raise RuntimeError(f"Xvfb exited before it was ready (status {process.poll()})")
            received += chunk
    return int(received.strip())
