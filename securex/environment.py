"""Taking a secret out of the process environment, so it does not linger.

``os.environ.pop`` only unlinks a variable: the original ``NAME=value`` bytes stay
in the memory the kernel shows as ``/proc/PID/environ`` (to anyone who can read
it: the same user, root, crash reporters), and a child started before the pop
inherits it. ``take_from_environment`` overwrites those bytes in place first
(Linux and other glibc systems, through the C ``environ`` array) and then removes
the variable, so children never see it either. Elsewhere it only removes it.
"""

from __future__ import annotations

import ctypes
import os
import sys


def take_from_environment(name: str) -> str | None:
    """The variable's value (None if unset), scrubbed from this process's environment."""
    value = os.environ.get(name)
    if value is None:
        return None
    if sys.platform.startswith("linux"):
        _overwrite_in_place(name.encode())
    os.environ.pop(name, None)
    return value


def _overwrite_in_place(name: bytes) -> None:
    try:
        environ = ctypes.POINTER(ctypes.c_char_p).in_dll(ctypes.CDLL(None), "environ")
    except (OSError, ValueError, AttributeError):
        return   # not a C library we know: the variable is still removed
    prefix = name + b"="
    index = 0
    while environ[index] is not None:
        entry = environ[index]
        if entry.startswith(prefix):
            address = ctypes.cast(environ, ctypes.POINTER(ctypes.c_void_p))[index]
            # Keep "NAME=" so nothing that walks environ trips; blank the value.
            ctypes.memset(address + len(prefix), 0, len(entry) - len(prefix))
        index += 1
