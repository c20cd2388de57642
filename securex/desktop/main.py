"""Start the desktop app: ``run(options)`` opens the window, runs Tk's main loop and
returns the exit status; ``run_and_exit(options)`` then ends the process at once
(``client.py`` calls it). The app itself is ``app.App``.

Ctrl+C in the launching terminal and SIGTERM leave the room as cleanly as closing the
window, and at once: the process is gone well within half a second.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import tkinter as tk

from typing import NoReturn

from securex.desktop import settings as stored
from securex.desktop.app import App, AppOptions
from securex.errors import EXIT_ERROR

ERRANDS_AT_EXIT = 2.0    # seconds the last errands (a settings write) get once the window is gone

NO_DISPLAY = """\
Cannot open a window: {error}
There is no graphical display here (is DISPLAY set?). Use the terminal client instead:
  securex --cli"""


def _install_interrupts(root: tk.Tk, app: App) -> None:
    """SIGINT (Ctrl+C in the launching terminal) and SIGTERM leave as cleanly as closing
    the window, at once. Python runs a signal handler only between bytecodes, and Tk's
    main loop is C: the C-level handler writes to a wake-up pipe that Tk watches, so a
    Python callback (and with it the handler) runs immediately rather than at the next
    pump tick. The handler itself only sets a flag and a timer; the pump acts on them."""
    def handle(signum: int, frame: object) -> None:
        app.interrupt_soon()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handle)
    if sys.platform == "win32":
        return
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end)

    def drain(fd: int, mask: int) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(fd, 512)
        # The handler has run by now (before this line), and a Tk callback is a safe
        # place to act: no need to wait for the pump.
        if app.quit_requested:
            app.quit_requested = False
            app.interrupt()

    root.createfilehandler(read_end, tk.READABLE, drain)


def run(options: AppOptions) -> int:
    """Open the window and return the exit status once it closes."""
    try:
        root = tk.Tk(className="SecureX")
    except tk.TclError as error:
        print(NO_DISPLAY.format(error=error), file=sys.stderr)
        return EXIT_ERROR
    app = App(root, options, settings=stored.load())
    _install_interrupts(root, app)
    root.mainloop()
    app.background.join(ERRANDS_AT_EXIT)   # the window is gone: waiting on the disk is fine now
    return app.exit_status if app.exit_status is not None else EXIT_ERROR


def run_and_exit(options: AppOptions) -> NoReturn:
    """``run``, then end the process without the interpreter's teardown of its ~250 modules,
    which alone takes 0.1 to 0.4 s on a busy machine. By then everything that matters is
    done: the goodbye was said (or given up on), the settings written, the window gone."""
    status = run(options)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)
