"""File transfer: one member sends a file to two, disk to disk, over the real relay.

Secure X: three real ``ChatSession`` members, each in a process of its own. The
sender offers the file (hashing it first), both receivers accept at once
(``auto_accept``), and the relay fans each sealed chunk out to both; each
receiver checks size and digest before the file takes its name (and the
benchmark checks the saved file's SHA-256 against the source's). The time per
recipient runs from the sender's ``send_file`` to that receiver's "saved"
event, so it includes hashing at both ends. Meanwhile the sender sends a chat
message every 100 ms carrying its send time; each receiver records how long
each took to arrive (CLOCK_MONOTONIC is one clock for every process here).

Plain, twice, with no encryption, no hashing and no acknowledgements: the same
file, read in chunks of the same size by a sender that sends each chunk to both
receivers, which append it to a file:

* through an unencrypted Python relay (``bench_bare_relay.py``: the same framing,
  no flow control), one ROUTE per receiver, as the issue's baseline asks;
* through the Secure X relay itself, the same ROUTEs (held back while a receiver
  is behind): the same relay, only the clients' work differs. Not FANOUT: the
  relay skips a member that is behind for a FANOUT (file chunks rely on each
  receiver's window and resume), so a sender with no flow control would lose
  chunks.

Every run starts with the page cache's dirty data written out (``os.sync``), so no
run pays for the write-back of the one before.

Peak memory is each process's maximum resident set (``ru_maxrss``). CPU seconds
are each process's over the transfer alone (from "go" to the last receiver's
end; the relay's read from /proc while every connection is still open), and
their sum against the wall time shows whether the machine's cores were the limit.

    python bench/bench_files.py [--size-mib 256] [--repeats 2]
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

import bench_setup  # noqa: F401  (the project on sys.path)
from bench_relays import BARE, SECURE, Relay, running_relay
from helpers import CoreClient, RawConnection
from securex import protocol
from securex.events import ChatMessage, FileFinished
from securex.session.files import CHUNK_BYTES

ROOT = Path(__file__).resolve().parent.parent
RECEIVERS = ("Bob", "Carol")
RUN_TIMEOUT = 300.0
CHAT_EVERY = 0.1


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def sha256_of(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(1 << 20):
            sha.update(block)
    return sha.hexdigest()


# -- Secure X members ----------------------------------------------------------------------------

def securex_receiver(pipe: Connection, port: int, name: str, folder: str) -> None:
    client = CoreClient(port, name, auto_accept=Path(folder), downloads=Path(folder))
    client.join()
    pipe.send("joined")
    cpu_joined = cpu_seconds()
    latencies: list[float] = []
    while True:
        event = client.wait_for((FileFinished, ChatMessage), timeout=RUN_TIMEOUT)
        if isinstance(event, ChatMessage):
            latencies.append(time.monotonic() - float(event.text.split("=", 1)[1]))
            continue
        finished_at = time.monotonic()
        break
    cpu = cpu_seconds() - cpu_joined
    rss = peak_rss_mib()
    digest = sha256_of(Path(event.path)) if event.ok else ""
    pipe.send({"finished_at": finished_at, "ok": event.ok, "message": event.message, "sha256": digest,
               "latencies": latencies, "rss_mib": rss, "cpu": cpu})
    pipe.recv()     # stay connected until every receiver is done: the relay's CPU counts live threads
    client.close()


def securex_sender(pipe: Connection, port: int, source: str) -> None:
    client = CoreClient(port, "Alice")
    client.join()
    client.wait_members(*RECEIVERS)
    pipe.send("ready")
    pipe.recv()
    started, cpu_started = time.monotonic(), cpu_seconds()
    client.session.send_file(Path(source))
    delivered: dict[str, bool] = {}
    next_chat = started
    while len(delivered) < len(RECEIVERS):
        if time.monotonic() >= next_chat:
            client.session.send_text(f"sent at={time.monotonic()!r}")
            next_chat += CHAT_EVERY
        try:
            event = client.wait_for(FileFinished, timeout=CHAT_EVERY / 2)
        except AssertionError:
            if time.monotonic() - started > RUN_TIMEOUT:
                raise
            continue
        delivered[event.peer] = event.ok
    pipe.send({"started": started, "delivered": delivered, "rss_mib": peak_rss_mib(),
               "cpu": cpu_seconds() - cpu_started})
    client.close()


def run_securex(source: Path, work: Path) -> dict:
    context = multiprocessing.get_context("spawn")
    with running_relay(SECURE) as server:
        port = server.port
        receivers = []
        for name in RECEIVERS:
            ours, theirs = context.Pipe()
            folder = work / name
            process = context.Process(target=securex_receiver, args=(theirs, port, name, str(folder)))
            process.start()
            receivers.append((name, ours, process, folder))
            if not ours.poll(60):
                raise RuntimeError(f"{name} did not join")
            ours.recv()
        ours, theirs = context.Pipe()
        sender = context.Process(target=securex_sender, args=(theirs, port, str(source)))
        sender.start()
        if not ours.poll(60):
            raise RuntimeError("the sender did not join")
        ours.recv()
        results, relay_cpu = _go_and_collect(server, ours, [(name, pipe) for name, pipe, _, _ in receivers], "")
        for _name, pipe, process, folder in receivers:
            pipe.send("done")
            process.join(30)
            shutil.rmtree(folder, ignore_errors=True)
        if not ours.poll(RUN_TIMEOUT):
            raise RuntimeError("the sender did not finish")
        sent = ours.recv()
        sender.join(30)
    return {"sender": sent, "receivers": results, "relay_cpu": relay_cpu}


def _go_and_collect(relay: Relay, sender: Connection, receivers: list[tuple[str, Connection]],
                    label: str) -> tuple[dict, float]:
    """Start the transfer; each receiver's result, and the relay's CPU seconds until the last."""
    relay_cpu = relay.cpu_seconds()
    sender.send("go")
    results = {}
    for name, pipe in receivers:
        if not pipe.poll(RUN_TIMEOUT):
            raise RuntimeError(f"{label}{name} did not finish")
        results[name] = pipe.recv()
    return results, relay.cpu_seconds() - relay_cpu


# -- plain: the same bytes through the same relay, nothing added ----------------------------------

def plain_receiver(pipe: Connection, port: int, size: int, path: str) -> None:
    connection = RawConnection(port, timeout=RUN_TIMEOUT)
    welcome = connection.hello()
    pipe.send(welcome.your_id)
    cpu_connected = cpu_seconds()
    received = 0
    with open(path, "wb") as out:
        while received < size:
            frame = connection.read_frame()
            if frame.type == protocol.FrameType.ROUTED:
                body = protocol.parse_routed(frame).body
                out.write(body)
                received += len(body)
    pipe.send({"finished_at": time.monotonic(), "rss_mib": peak_rss_mib(), "cpu": cpu_seconds() - cpu_connected})
    pipe.recv()     # stay connected until every receiver is done: the relay's CPU counts live threads
    connection.close()


def plain_sender(pipe: Connection, port: int, source: str, recipients: list[bytes]) -> None:
    connection = RawConnection(port, timeout=RUN_TIMEOUT)
    connection.hello()
    while True:      # until both receivers are listed
        frame = connection.read_until(protocol.FrameType.ROSTER)
        if len(protocol.parse_roster(frame, protocol.MAX_CLIENTS_LIMIT)) == len(recipients) + 1:
            break
    pipe.send("ready")
    pipe.recv()
    started, cpu_started = time.monotonic(), cpu_seconds()
    with open(source, "rb") as data:
        while chunk := data.read(CHUNK_BYTES):
            for recipient in recipients:
                connection.send(protocol.encode_route(recipient, chunk))
    pipe.send({"started": started, "rss_mib": peak_rss_mib(), "cpu": cpu_seconds() - cpu_started})
    pipe.recv()
    connection.close()


def run_plain(source: Path, work: Path, *, bare: bool) -> dict:
    context = multiprocessing.get_context("spawn")
    size = source.stat().st_size
    with running_relay(BARE if bare else SECURE) as server:
        port = server.port
        receivers, ids = [], []
        for name in RECEIVERS:
            ours, theirs = context.Pipe()
            process = context.Process(target=plain_receiver, args=(theirs, port, size, str(work / name)))
            process.start()
            if not ours.poll(60):
                raise RuntimeError(f"plain {name} did not connect")
            ids.append(ours.recv())
            receivers.append((name, ours, process))
        ours, theirs = context.Pipe()
        sender = context.Process(target=plain_sender, args=(theirs, port, str(source), ids))
        sender.start()
        if not ours.poll(60):
            raise RuntimeError("the plain sender did not connect")
        ours.recv()
        results, relay_cpu = _go_and_collect(server, ours, [(name, pipe) for name, pipe, _ in receivers], "plain ")
        for name, pipe, process in receivers:
            pipe.send("done")
            process.join(30)
            (work / name).unlink(missing_ok=True)
        sent = ours.recv()
        ours.send("done")
        sender.join(30)
    return {"sender": sent, "receivers": results, "relay_cpu": relay_cpu}


def settled(run: Callable[..., dict], *args: object, **kwargs: object) -> dict:
    """``run`` started with nothing waiting to be written to disk. The plain receivers
    leave their files in the page cache (they do not fsync); the kernel writing them out
    during the next run would slow that run instead of theirs."""
    os.sync()
    return run(*args, **kwargs)


# -- the report ------------------------------------------------------------------------------------

def rates(run: dict, size: int) -> dict[str, float]:
    started = run["sender"]["started"]
    return {name: size / (result["finished_at"] - started) / 1e6 for name, result in run["receivers"].items()}


def _cpu_line(label: str, run: dict, size: int) -> str:
    """CPU seconds each process spent on one transfer, and how much of the machine that is."""
    wall = max(result["finished_at"] for result in run["receivers"].values()) - run["sender"]["started"]
    parts = [run["sender"]["cpu"], *(result["cpu"] for result in run["receivers"].values()), run["relay_cpu"]]
    return (f"  CPU seconds, {label}: sender {parts[0]:.2f}, receivers "
            + ", ".join(f"{cpu:.2f}" for cpu in parts[1:-1])
            + f", relay {parts[-1]:.2f}: {sum(parts):.2f} in all over {wall:.2f} s "
            f"({sum(parts) / wall:.2f} of {os.cpu_count()} CPUs, {1e9 * sum(parts) / size:.1f} ns per byte)")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    size = args.size_mib * 1024 * 1024
    work = Path(tempfile.mkdtemp(prefix="securex-bench-files-"))
    try:
        source = work / "payload.bin"
        with source.open("wb") as out:
            for _ in range(args.size_mib):
                out.write(os.urandom(1024 * 1024))
        expected = sha256_of(source)
        print(f"File transfer: {args.size_mib} MiB from one member to two, over loopback, "
              f"{os.cpu_count()} CPUs, best of {args.repeats}")
        best: dict[str, dict[str, float]] = {"securex": {}, "bare": {}, "same_relay": {}}
        latencies: list[float] = []
        peaks: dict[str, float] = {}
        cpu_lines: list[str] = []
        for _ in range(args.repeats):
            bare = settled(run_plain, source, work, bare=True)
            same_relay = settled(run_plain, source, work, bare=False)
            secure = settled(run_securex, source, work)
            for name, result in secure["receivers"].items():
                if not result["ok"] or result["sha256"] != expected:
                    print(f"FAILED: {name}: {result['message']}")
                    return 1
                latencies += result["latencies"]
                peaks[name] = max(peaks.get(name, 0), result["rss_mib"])
            peaks["Alice (sender)"] = max(peaks.get("Alice (sender)", 0), secure["sender"]["rss_mib"])
            for kind, run in (("securex", secure), ("bare", bare), ("same_relay", same_relay)):
                for name, rate in rates(run, size).items():
                    best[kind][name] = max(best[kind].get(name, 0), rate)
            cpu_lines += [_cpu_line(label, run, size) for label, run in
                          (("Secure X", secure), ("plain, Python relay", bare), ("plain, Secure X relay", same_relay))]
        for name in RECEIVERS:
            ours, plain, same = best["securex"][name], best["bare"][name], best["same_relay"][name]
            print(f"  to {name}: Secure X {ours:.0f} MB/s; unencrypted Python relay {plain:.0f} MB/s "
                  f"({ours / plain:.2f} of it; target >= 0.5); unencrypted through the Secure X relay "
                  f"{same:.0f} MB/s ({ours / same:.2f} of it); target >= 100 MB/s")
        print("  peak memory: " + ", ".join(f"{name} {mib:.0f} MiB" for name, mib in peaks.items())
              + " (target < 150 MiB each)")
        for line in cpu_lines:
            print(line)
        if latencies:
            print(f"  chat during the transfer: {len(latencies)} messages, median "
                  f"{1000 * statistics.median(latencies):.1f} ms, p99 {1000 * percentile(latencies, 0.99):.1f} ms, "
                  f"max {1000 * max(latencies):.1f} ms")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
