"""Secure X client: ``python client.py`` (desktop) or ``python client.py --cli`` (terminal).

This file only parses arguments, finds the passphrase and starts a front end;
the chat itself lives in ``chat_session.py``.

Exit statuses (scripts rely on them) are defined in ``errors.py``.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from crypto_utils import generate_passphrase
from securex.errors import EXIT_ERROR, EXIT_OK, EXIT_USAGE, SecureXError
from securex.protocol import DEFAULT_PORT

PASSPHRASE_ENV = "SECUREX_PASSPHRASE"

TKINTER_MISSING = """\
The desktop app needs Tkinter, which this Python does not have.
Install it with one of:
  Debian/Ubuntu:  sudo apt install python3-tk
  Fedora:         sudo dnf install python3-tkinter
  macOS (brew):   brew install python-tk
or use the terminal client:  python client.py --cli"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Secure X: end-to-end encrypted group chat for your local network.",
        epilog=f"The passphrase is read from ${PASSPHRASE_ENV}, else --passphrase-file, "
               "else asked for (without echo).")
    parser.add_argument("--cli", action="store_true", help="chat in this terminal instead of a window")
    parser.add_argument("--host", help="server address, as server.py printed it")
    parser.add_argument("--port", type=int, default=None, help=f"server port (default: {DEFAULT_PORT})")
    parser.add_argument("--name", help="your display name (travels encrypted)")
    parser.add_argument("--passphrase-file", metavar="PATH", help="read the room passphrase from this file")
    parser.add_argument("--new-passphrase", action="store_true",
                        help="print a freshly generated strong passphrase and exit")
    parser.add_argument("--no-reconnect", action="store_true",
                        help="exit when the connection drops instead of reconnecting")
    args = parser.parse_args(argv)
    if args.port is not None and not 1 <= args.port <= 65535:
        parser.error("--port must be between 1 and 65535")
    return args


def passphrase_from_args(args: argparse.Namespace) -> str | None:
    """From the environment or --passphrase-file; None if neither is given.
    Raises SecureXError if the file cannot be read."""
    from_env = os.environ.get(PASSPHRASE_ENV)
    if from_env:
        return from_env
    if args.passphrase_file:
        try:
            with open(args.passphrase_file, encoding="utf-8") as f:
                return f.read().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as error:
            raise SecureXError(f"Cannot read the passphrase file {args.passphrase_file}: "
                               f"{getattr(error, 'strerror', None) or error}") from None
    return None


def run_cli(args: argparse.Namespace) -> int:
    from securex import terminal as terminal_client

    try:
        passphrase = passphrase_from_args(args)
        if passphrase is None:
            if not sys.stdin.isatty():
                raise SecureXError(f"No passphrase: set {PASSPHRASE_ENV}, use --passphrase-file, "
                                   "or run in a terminal to type it.")
            passphrase = getpass.getpass("Room passphrase: ")
        host = args.host or terminal_client.ask("Server address: ", "--host")
        name = args.name or terminal_client.ask("Your name: ", "--name")
    except SecureXError as error:
        print(f"Error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (EOFError, KeyboardInterrupt):
        print(file=sys.stderr)
        return EXIT_USAGE
    if not passphrase:
        print("Error: the passphrase is empty.", file=sys.stderr)
        return EXIT_USAGE
    return terminal_client.run(host, args.port or DEFAULT_PORT, name, passphrase,
                               auto_reconnect=not args.no_reconnect)


def run_desktop(args: argparse.Namespace) -> int:
    try:
        import tkinter  # noqa: F401  (only to give a helpful message if it is missing)
    except ImportError:
        print(TKINTER_MISSING, file=sys.stderr)
        return EXIT_ERROR
    from securex.desktop import app as desktop_app

    try:
        passphrase = passphrase_from_args(args)
    except SecureXError as error:
        print(f"Error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return desktop_app.run(args, passphrase)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.new_passphrase:
        print(generate_passphrase())
        return EXIT_OK
    return run_cli(args) if args.cli else run_desktop(args)


if __name__ == "__main__":
    sys.exit(main())
