"""The one exception hierarchy of Secure X.

Every class's docstring is written to be shown to a user: front ends print
``str(error)`` and nothing else, so no traceback ever reaches a person.
Library exceptions are translated at the boundary where they happen.
"""

from __future__ import annotations

import socket


class SecureXError(Exception):
    """Something went wrong in Secure X."""

    def __init__(self, message: str | None = None) -> None:
        # The docstring is the default message, on one line however it is wrapped.
        super().__init__(message or " ".join((self.__doc__ or "").split()))


class ProtocolError(SecureXError):
    """The other side sent data that is not Secure X protocol."""


class DecryptionError(SecureXError):
    """A message failed authentication and was dropped (tampered, replayed or not for this room)."""


class RoomFullError(SecureXError):
    """The room is full. Ask a member to leave, or ask the host to raise --max-clients."""


class WrongPassphraseError(SecureXError):
    """Wrong passphrase: it does not match the room's. Check it with the host and type it again."""

    def __init__(self, message: str | None = None, *, may_join_anyway: bool = False) -> None:
        super().__init__(message)
        # The members present agree on another passphrase: a typo here, or someone else
        # holding the room. The user may choose to join anyway and wait for the others.
        self.may_join_anyway = may_join_anyway


class ServerUnreachableError(SecureXError):
    """Cannot reach the Secure X server. Check the address and port, and that server.py is running."""


class ConnectionLostError(SecureXError):
    """The connection to the server was lost."""


class RefusedError(SecureXError):
    """The server closed the connection."""


class MessageTooLongError(SecureXError):
    """Message not sent: it is over the size limit."""


class SendQueueFullError(SecureXError):
    """Message not sent: too many messages are already waiting to be sent. Wait a moment and send it again."""


class MissingDependencyError(SecureXError, ImportError):
    """Secure X needs pycryptodome, which this Python does not have. Install Secure X with its
    dependencies (`.venv/bin/pip install .` in the project folder), or run
    `pip install pycryptodome` inside the virtual environment you use."""


def describe_connect_error(error: OSError, host: str, port: int, timeout: float) -> ServerUnreachableError:
    """The one place a failed connect becomes words a person can act on."""
    server = f"{host}:{port}"
    if isinstance(error, socket.gaierror):
        return ServerUnreachableError(f"Unknown host {host!r}: check the server address.")
    if isinstance(error, TimeoutError):
        return ServerUnreachableError(f"No answer from {server} within {timeout:g} s. Check the address, and "
                                      f"that no firewall blocks port {port}.")
    if isinstance(error, ConnectionRefusedError):
        return ServerUnreachableError(f"Nothing is listening at {server}. Check the address and port, and that "
                                      "the Secure X server is running.")
    return ServerUnreachableError(f"Cannot reach {server}: {error.strerror or error}.")


def describe_reconnect_error(error: OSError, host: str, port: int, timeout: float) -> ServerUnreachableError:
    """A failed connect while trying to get back: the address worked before, so say
    what happened, not "check the address"."""
    server = f"{host}:{port}"
    if isinstance(error, TimeoutError):
        why = f"no answer within {timeout:g} s"
    elif isinstance(error, ConnectionRefusedError):
        why = "nothing is listening there now"
    elif isinstance(error, socket.gaierror):
        why = f"the name {host} does not resolve now"
    else:
        why = error.strerror or str(error)
    return ServerUnreachableError(f"{server} cannot be reached yet ({why}).")


# Exit statuses of client.py, a stable contract for scripts.
EXIT_OK = 0                 # left normally, or the server shut down
EXIT_ERROR = 1              # anything else
EXIT_USAGE = 2              # bad arguments, no passphrase
EXIT_FULL = 3
EXIT_WRONG_PASSPHRASE = 4
EXIT_UNREACHABLE = 5        # server unreachable, or connection lost without reconnecting


def exit_status(error: SecureXError | None) -> int:
    """The exit status for how a session ended (None: it ended normally)."""
    if error is None:
        return EXIT_OK
    if isinstance(error, RoomFullError):
        return EXIT_FULL
    if isinstance(error, WrongPassphraseError):
        return EXIT_WRONG_PASSPHRASE
    if isinstance(error, (ServerUnreachableError, ConnectionLostError)):
        return EXIT_UNREACHABLE
    return EXIT_ERROR

