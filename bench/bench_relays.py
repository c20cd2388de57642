"""The two relays under test, each in a process of its own: starting and stopping
them, reading their CPU time and memory, and waiting until a room is empty.

* ``SECURE``: the real relay, ``server.py --host 127.0.0.1 --port 0 --quiet
  --no-announce``, with its default limits (started by ``helpers.server_process``).
* ``BARE``: ``bench_bare_relay.py``, the same framing and nothing else.

Runs take turns on the same two relays, so every run starts by waiting until
the previous run's members have gone (``wait_until_empty``): a newcomer that
found a leftover member in the roster would wait for it to answer its PAKE.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import bench_proc
import bench_setup
from helpers import WAIT, Process, RawConnection, python_env, server_process
from securex import protocol

SECURE = "Secure X"
BARE = "bare"
KINDS = (SECURE, BARE)
BARE_SCRIPT = bench_setup.BENCH / "bench_bare_relay.py"


@dataclass
class Relay:
    kind: str
    port: int
    process: Process

    @property
    def pid(self) -> int:
        return self.process.proc.pid

    def cpu_seconds(self) -> float:
        self.check_running()
        return bench_proc.cpu_seconds(self.pid)

    def memory_kib(self, key: str = "VmRSS") -> int:
        self.check_running()
        return bench_proc.memory_kib(self.pid, key)

    def check_running(self) -> None:
        if self.process.proc.poll() is not None:
            raise RuntimeError(f"the {self.kind} relay exited: {self.process.output[-600:]}")


@contextmanager
def running_relay(kind: str) -> Iterator[Relay]:
    """The relay of that kind on 127.0.0.1 and a free port, killed at the end."""
    if kind == SECURE:
        with server_process("--quiet", "--no-announce") as (process, port):
            yield Relay(kind, port, process)
        return
    process = Process([str(BARE_SCRIPT)], python_env())
    try:
        port = int(process.expect(r"Bare relay on 127\.0\.0\.1:(\d+)").group(1))
        yield Relay(kind, port, process)
    finally:
        process.kill()


def wait_until_empty(port: int, timeout: float = WAIT) -> None:
    """Until a probe that says HELLO is the only one in the roster; then it leaves."""
    deadline = time.monotonic() + timeout
    while True:
        probe = RawConnection(port)
        try:
            welcome = probe.hello()
            roster = protocol.parse_roster(probe.read_until(protocol.FrameType.ROSTER), welcome.capacity)
            if len(roster) == 1:
                probe.send(protocol.encode_frame(protocol.FrameType.LEAVE))
                probe.read_until_closed()
                return
        finally:
            probe.close()
        if time.monotonic() > deadline:
            raise RuntimeError(f"the room on port {port} still lists {len(roster) - 1} members after {timeout:g} s")
        time.sleep(0.05)
