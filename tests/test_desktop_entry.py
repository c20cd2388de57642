"""The desktop app started as a user starts it, ``python client.py`` in a child process on
the test's X server: it joins by itself when everything is on the command line, and
Ctrl+C or SIGTERM from the launching terminal leave the room cleanly and at once."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import time

import pytest

from desktop_helpers import SLOW
from helpers import PASSPHRASE, Process, core_clients, python_env, running_server
from securex.errors import EXIT_OK
from securex.events import DeliveryChanged, MemberJoined, MemberLeft

pytest_plugins = ("desktop_helpers",)   # the display, config_dir and root fixtures

PROMPT = 0.5    # seconds from Ctrl+C to the process gone


def eve_is_in(bob) -> None:
    """Until Eve's receipt for one of Bob's messages: the app is in the room on its own side
    too, where a goodbye can be said. (Bob verifies Eve a moment before Eve has verified
    everyone; a message that reaches her before that is not acknowledged, so Bob asks again.)"""
    deadline = time.monotonic() + SLOW
    for attempt in itertools.count():
        assert time.monotonic() < deadline, "Eve never acknowledged a message"
        bob.session.send_text(f"hello Eve ({attempt})")
        with contextlib.suppress(AssertionError):
            bob.wait_for(DeliveryChanged, lambda e: "Eve" in e.delivered_to, timeout=1.0)
            return


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl+c", "sigterm"])
def test_client_py_joins_and_a_signal_leaves_cleanly_and_promptly(display, config_dir, signum):
    with running_server() as server, core_clients(server.port, "Bob") as (bob,):
        env = python_env(SECUREX_PASSPHRASE=PASSPHRASE, DISPLAY=os.environ["DISPLAY"],
                         SECUREX_CONFIG_DIR=str(config_dir))
        app = Process(["client.py", "--host", "127.0.0.1", "--port", str(server.port), "--name", "Eve"], env)
        try:
            bob.wait_for(MemberJoined, lambda e: e.member.name == "Eve", timeout=SLOW)
            eve_is_in(bob)
            sent = time.monotonic()
            app.proc.send_signal(signum)
            status = app.wait()
            took = time.monotonic() - sent
            assert status == EXIT_OK, app.output
            # A goodbye, not a dropped connection: the others see Eve left.
            bob.wait_for(MemberLeft, lambda e: e.member.name == "Eve" and not e.dropped)
            assert "Traceback" not in app.output
            print(f"\n{signal.Signals(signum).name}: the app was gone {took * 1000:.0f} ms after the signal")
            assert took < PROMPT, f"{took:.2f} s"
        finally:
            app.kill()
