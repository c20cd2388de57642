"""Secure X client: ``securex`` (desktop) or ``securex --cli`` (terminal).
From a checkout, ``python3 client.py`` does the same.

This file is only the command line: arguments, where the passphrase comes
from, and which front end to start. The chat itself lives in ``securex/``.

Exit statuses (scripts rely on them) are defined in ``securex/errors.py``:
0 left or the server shut down, 1 other error, 2 bad arguments or no
passphrase, 3 room full, 4 wrong passphrase, 5 server unreachable or
connection lost.
"""

from __future__ import annotations

import argparse
import getpass
import re
import sys
from pathlib import Path

from securex import logs
from securex.environment import take_from_environment
from securex.errors import EXIT_ERROR, EXIT_OK, EXIT_USAGE, MissingDependencyError, SecureXError
from securex.protocol import DEFAULT_PORT
from securex.storage import folder_problem, is_private
from securex.text import validate_name

PASSPHRASE_ENV = "SECUREX_PASSPHRASE"

TKINTER_MISSING = """\
The desktop app needs Tkinter, which this Python does not have.
Install it with one of:
  Debian/Ubuntu:  sudo apt install python3-tk
  Fedora:         sudo dnf install python3-tkinter
  macOS (brew):   brew install python-tk
or use the terminal client:  securex --cli"""

TYPE_THE_ADDRESS = "Type the address the server printed instead:  securex --host ADDRESS --port PORT"

NO_ROOMS_FOUND = """\
No Secure X rooms answered within {seconds:g} s. Check that:
  - the server is running, and was not started with --no-announce;
  - this computer is on the same network as the server (same Wi-Fi or wired LAN; guest
    Wi-Fi often keeps computers apart);
  - no firewall on either computer blocks multicast DNS (UDP port 5353).
""" + TYPE_THE_ADDRESS

EPILOG = f"""\
passphrase: --passphrase-file wins; else ${PASSPHRASE_ENV} (removed from the environment as soon
as it is read); else it is asked for without echo.

in the terminal client, type a line to send it; /who lists the members with their safety codes,
/send PATH offers a file to everyone (each offer prints an id: /accept ID, /decline ID, /cancel ID),
/trust NAME accepts a member's changed safety code once you have compared it,
/help lists the commands, and /quit, <quit>, {{quit}}, end of input or Ctrl+C leave the room.

files: accepted files go to --downloads (default ~/Downloads/Secure X), never over an existing
file; --accept-files DIR accepts every offer into DIR (for scripts). Offers over --max-file-size
(default 4G) are refused.

exit statuses: 0 left (or the server shut down), 1 other error, 2 bad arguments or no passphrase,
3 room full, 4 wrong passphrase (when the members present all share another one, --join-anyway
enters even so), 5 server unreachable or connection lost.

desktop app: --host, --port and --name fill in the connect dialog (--host and --name with a
passphrase: it connects at once); SECUREX_THEME=dark (or light) picks the theme. Settings, identity keys and the
safety codes you have seen are kept (readable by you only) in $XDG_CONFIG_HOME/securex
(~/.config/securex), or in $SECUREX_CONFIG_DIR when set."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="securex", description="Secure X: end-to-end encrypted group chat for your local network.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cli", action="store_true", help="chat in this terminal instead of a window")
    parser.add_argument("--host", help="server address, as the server printed it (HOST:PORT too)")
    parser.add_argument("--port", type=int, default=None, help=f"server port (default: {DEFAULT_PORT})")
    parser.add_argument("--name", help="your display name (travels encrypted)")
    parser.add_argument("--passphrase-file", metavar="PATH", help="read the room passphrase from this file")
    parser.add_argument("--discover", action="store_true",
                        help="list the rooms announced on the local network and exit (status 1 if none)")
    parser.add_argument("--new-passphrase", action="store_true",
                        help="print a freshly generated strong passphrase and exit")
    parser.add_argument("--no-reconnect", action="store_true",
                        help="exit when the connection drops instead of reconnecting")
    parser.add_argument("--downloads", metavar="DIR", type=Path,
                        help="where accepted files are saved (default: ~/Downloads/Secure X)")
    parser.add_argument("--join-anyway", action="store_true",
                        help="enter even if the members present all share another passphrase (someone may be "
                             "holding the room); you wait there for those with yours")
    parser.add_argument("--accept-files", metavar="DIR", type=Path,
                        help="accept every file offered, into DIR (terminal client; for scripts)")
    parser.add_argument("--max-file-size", metavar="SIZE", type=file_size, default=None,
                        help="refuse offers of files larger than SIZE, e.g. 500M or 2G (default: 4G)")
    args = parser.parse_args(argv)
    if args.port is not None and not 1 <= args.port <= 65535:
        parser.error("--port must be between 1 and 65535")
    if args.name is not None and not args.name.strip():
        parser.error("--name is empty: give a display name")
    if args.name is not None and args.cli:     # the window shows it in its dialog instead, to be put right there
        try:       # every argument's error looks the same (a tester's finding)
            validate_name(args.name)
        except ValueError as error:
            parser.error(f"--name {args.name}: {error}")
    for flag, folder in (("--accept-files", args.accept_files), ("--downloads", args.downloads)):
        problem = folder_problem(folder.expanduser()) if folder is not None else None
        if problem:
            parser.error(f"{flag} {folder}: {problem}")
    return args


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)b?", re.IGNORECASE)


def file_size(text: str) -> int:
    """"500M", "2G", "1.5GB", "100000": bytes (k, M, G, T are powers of 1000, as sizes are shown)."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size; write it like 500M or 2G")
    number, unit = float(match.group(1)), match.group(2).lower()
    size = int(number * 1000 ** " kmgt".index(unit or " "))
    if size < 1:
        raise argparse.ArgumentTypeError("the size must be at least 1 byte")
    return size


def passphrase_from_args(args: argparse.Namespace) -> str | None:
    """From --passphrase-file (an explicit flag wins) or the environment; None if
    neither is given. The environment variable is removed once read, so it does
    not linger in /proc/PID/environ or reach child processes. Raises SecureXError
    if the file cannot be read or is empty."""
    from_env = take_from_environment(PASSPHRASE_ENV)
    if args.passphrase_file:
        path = Path(args.passphrase_file)
        try:
            passphrase = path.read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as error:
            raise SecureXError(f"Cannot read the passphrase file {path}: "
                               f"{getattr(error, 'strerror', None) or error}") from None
        if not is_private(path):
            print(f"Warning: {path} can be read by other users of this computer; "
                  f"make it private with: chmod 600 {path}", file=sys.stderr)
        if not passphrase:
            raise SecureXError(f"The passphrase file {path} is empty.")
        return passphrase
    return from_env or None


def session_options(args: argparse.Namespace, host: str, name: str, passphrase: str):
    from securex.session.runner import SessionOptions

    files = {}
    if args.downloads is not None:
        files["downloads"] = args.downloads.expanduser()
    if args.accept_files is not None:
        files["auto_accept"] = args.accept_files.expanduser()
    if args.max_file_size is not None:
        files["max_file_bytes"] = args.max_file_size
    return SessionOptions(host, args.port or DEFAULT_PORT, name, passphrase,
                          auto_reconnect=not args.no_reconnect, join_anyway=args.join_anyway, **files)


def run_cli(args: argparse.Namespace) -> int:
    from securex import terminal

    try:
        passphrase = passphrase_from_args(args)
        if passphrase is None and not sys.stdin.isatty():
            raise SecureXError(f"No passphrase: set {PASSPHRASE_ENV}, use --passphrase-file, "
                               "or run in a terminal to type it.")
        def address(typed: str) -> tuple[str, int | None]:
            return host_and_port(typed, args.port)

        host, port = (address(args.host) if args.host else
                      terminal.ask("Server address (HOST or HOST:PORT): ", "--host", "the server's address", address))
        name = (validate_name(args.name) if args.name else      # checked already: normalised here
                terminal.ask("Your name: ", "--name", "your name", validate_name))
        if passphrase is None:
            passphrase = getpass.getpass("Room passphrase: ")
    except SecureXError as error:
        print(f"Error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (EOFError, KeyboardInterrupt):
        print(file=sys.stderr)
        return EXIT_USAGE
    if not passphrase:
        print("Error: the passphrase is empty.", file=sys.stderr)
        return EXIT_USAGE
    args.port = port
    return terminal.run(session_options(args, host, name, passphrase))


def host_and_port(address: str, port: int | None) -> tuple[str, int | None]:
    """``--host`` (or what was typed) split into host and port; ``--port`` must agree."""
    from securex.address import split_host_port

    try:
        host, in_address = split_host_port(address)
    except ValueError as error:
        raise SecureXError(str(error)) from None
    if in_address is not None and port is not None and in_address != port:
        raise SecureXError(f"Two ports given: {address} and --port {port}. Give one.")
    return host, in_address or port


def run_desktop(args: argparse.Namespace) -> int:
    try:
        import tkinter  # noqa: F401  (only to give a helpful message if it is missing)
    except ImportError:
        print(TKINTER_MISSING, file=sys.stderr)
        return EXIT_ERROR
    from securex.desktop import main as desktop

    try:
        passphrase = passphrase_from_args(args)
        # HOST:PORT into the dialog's two fields (a tester saw "192.0.2.2:47050" beside port 5050).
        host, port = host_and_port(args.host, args.port) if args.host else (None, args.port)
    except SecureXError as error:
        print(f"Error: {error}", file=sys.stderr)
        return EXIT_USAGE
    options = desktop.AppOptions(host=host, port=port, name=args.name, passphrase=passphrase,
                                 auto_reconnect=not args.no_reconnect,
                                 downloads=args.downloads.expanduser() if args.downloads else None,
                                 max_file_bytes=args.max_file_size, join_anyway=args.join_anyway)
    # It ends the process itself once its window is gone (at once, without Python's teardown).
    return desktop.run_and_exit(options)


def run_discover() -> int:
    """``--discover``: one room per line on stdout (name, address:port, places), then 0;
    when none answer, or discovery cannot run here, why and what to try on stderr, then 1."""
    from securex.discovery import DISCOVER_SECONDS, DiscoveryUnavailableError, discover

    print(f"Looking for Secure X rooms on the local network ({DISCOVER_SECONDS:g} s)\u2026", file=sys.stderr)
    try:
        rooms = discover()
    except DiscoveryUnavailableError as error:
        print(f"Room discovery is unavailable here: {error}.\n{TYPE_THE_ADDRESS}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_ERROR
    if not rooms:
        print(NO_ROOMS_FOUND.format(seconds=DISCOVER_SECONDS), file=sys.stderr)
        return EXIT_ERROR
    for room in rooms:
        print(room.describe())
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logs.configure()
    if args.discover:
        return run_discover()
    try:
        if args.new_passphrase:
            from crypto_utils import generate_passphrase

            print(generate_passphrase())
            return EXIT_OK
        return run_cli(args) if args.cli else run_desktop(args)
    except MissingDependencyError as error:
        print(f"Error: {error}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
