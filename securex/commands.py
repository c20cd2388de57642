"""What a user types, understood the same way by both front ends.

A line is a chat message unless it is a quit word or starts with ``/``. To send
a message that starts with a slash, start it with two (``//shrug`` sends
``/shrug``). An unknown ``/command`` is never sent to the room by accident.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Action(enum.Enum):
    SEND = "send a message"
    QUIT = "leave the room"
    WHO = "list the members and their safety codes"
    HELP = "list the commands"
    SEND_FILE = "offer a file to the room"
    ACCEPT_FILE = "accept a file offer"
    DECLINE_FILE = "decline a file offer"
    CANCEL_FILE = "cancel a file transfer"
    TRUST = "trust a member's new safety code"
    MISSING_ARGUMENT = "a command without what it needs"
    UNKNOWN = "an unknown command"
    REFUSED = "a command this version does not offer"


QUIT_WORDS = frozenset({"<quit>", "{quit}", "/quit", "/exit"})

# The commands, as /help lists them (file commands are added with file transfer).
HELP = (
    ("/who", "list the members in the room with their safety codes"),
    ("/send PATH", "offer a file to everyone in the room"),
    ("/accept ID", "accept a file offer (the id is in the offer line)"),
    ("/decline ID", "decline a file offer"),
    ("/cancel ID", "stop a file transfer, sending or receiving"),
    ("/trust NAME", "accept NAME's new safety code, once you have compared it with them"),
    ("/help", "show this list"),
    ("/quit", "leave the room (also <quit>, {quit}, Ctrl+D at the start of a line, Ctrl+C)"),
    ("//text", "send a message that starts with a slash"),
)


@dataclass(frozen=True)
class Input:
    action: Action
    text: str = ""        # the message for SEND; the command word otherwise
    argument: str = ""    # what follows the command word (a path, a transfer id)


_COMMANDS_WITH_ARGUMENT = {"/send": Action.SEND_FILE, "/accept": Action.ACCEPT_FILE,
                           "/decline": Action.DECLINE_FILE, "/cancel": Action.CANCEL_FILE, "/trust": Action.TRUST}


def parse_input(line: str) -> Input:
    stripped = line.strip()
    if stripped.lower() in QUIT_WORDS:
        return Input(Action.QUIT, stripped)
    if stripped.startswith("//"):
        return Input(Action.SEND, line.replace("//", "/", 1))
    if not stripped.startswith("/"):
        return Input(Action.SEND, line)
    word, _, argument = stripped.partition(" ")
    word, argument = word.lower(), argument.strip()
    if word in _COMMANDS_WITH_ARGUMENT:
        if not argument:
            return Input(Action.MISSING_ARGUMENT, word)
        return Input(_COMMANDS_WITH_ARGUMENT[word], word, argument.strip("'\""))
    if word == "/who":
        return Input(Action.WHO, word)
    if word in ("/help", "/?"):
        return Input(Action.HELP, word)
    if word == "/me":
        return Input(Action.REFUSED, word)
    return Input(Action.UNKNOWN, word)


# The desktop app answers offers with each card's buttons (its cards show no id), and
# leaves by its window.
DESKTOP_HELP = tuple(
    (command, {"/send PATH": "offer a file to everyone in the room (or the Send file\u2026 button)",
               "/quit": "leave the room (also <quit>, {quit}, or close the window)"}.get(command, what))
    for command, what in HELP if command.split()[0] not in ("/accept", "/decline", "/cancel"))


def help_lines(*, desktop: bool = False) -> list[str]:
    commands = DESKTOP_HELP if desktop else HELP
    width = max(len(command) for command, _ in commands)
    lines = [f"{command:<{width}}  {what}" for command, what in commands]
    if desktop:
        lines.append("A file offer's Accept, Decline and Cancel are on its card.")
    return lines


def refusal(parsed: Input) -> str:
    """The message for an UNKNOWN, REFUSED or MISSING_ARGUMENT command (nothing is sent)."""
    if parsed.action == Action.MISSING_ARGUMENT:
        what = {"/send": "a file: /send PATH", "/trust": "the member's name: /trust NAME"}.get(
            parsed.text, f"the id its line showed: {parsed.text} ID")
        return f"{parsed.text} needs {what}"
    if parsed.action == Action.REFUSED:
        return (f"{parsed.text} is not supported (it would let a message pass for a notice); "
                "type the message itself.")
    return f"Unknown command {parsed.text}: nothing was sent. /help lists the commands; //text sends /text."
