"""The disk and chunk-crypto work of file transfers, on a thread of its own.

``files.py`` decides what to do and asks for it with ``Job`` values; this worker
does it and hands back ``Result`` values, so neither the network thread nor the
Tk thread ever waits on a disk. Jobs come in order on a bounded queue (the
transfer windows bound how many are ever outstanding), results go back on a
queue the runner drains after ``wake()``.

Sending: the source is hashed once for the offer (its digest: RFC 6962's Merkle
tree hash with a leaf per chunk, the leaves hashed on up to HASH_THREADS cores at
once), kept open, and read chunk by chunk at its offset, each chunk sealed under
the file's key; never past the size that was hashed.
Receiving: a hidden partial file is created exclusively in the download folder
(and partial files left there by a Secure X that was killed are cleared once surely dead);
each chunk is opened (a failed tag is a failed verification), appended, and its
leaf added to the tree; at the end the size, the number of chunks and the digest
must match the offer before
the file takes its final name, a numbered one if the name is taken (an existing
file is never overwritten). Any failure deletes the partial file.

Memory stays flat whatever the file's size: one chunk at a time, plus the queue.
Every 16 MiB received the kernel is asked to start writing the file out (and to
drop it from the page cache), so the fsync before the file takes its name is short.
Chunks are read and opened in one reused buffer and sealed straight into the
frame body: at half a megabyte, fresh buffers cost more in page faults than AES.
"""

from __future__ import annotations

import contextlib
import hashlib
import errno
import logging
import math
import os
import queue
import secrets
import shutil
import stat
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

try:
    import fcntl
except ImportError:      # Windows: partial files are not locked; their age alone tells the dead ones
    fcntl = None

from crypto_utils import (TAG_BYTES, Bytes, TreeHash, constant_time_equal, open_chunk_into, seal_chunk_into,
                          tree_leaf_hash, tree_root)
from securex.errors import DecryptionError
from securex.session import peer_wire
from securex.session.files import (STALLED_SECONDS, ChunkRead, Discard, Failed, FinishTarget, Hashed, HashSource,
                                   Job, Opened, OpenTarget, ReadChunk, Result, Saved, WriteChunk, Written)
from securex.session.peer_wire import BULK_HEADER_BYTES, CancelReason
from securex.text import human_size, shortened_file_name

log = logging.getLogger(__name__)

JOB_QUEUE_SIZE = 1024
HASH_THREADS = min(4, os.cpu_count() or 1)     # a file's leaves are hashed on this many cores at once
EARLY_WRITEBACK_BYTES = 16 * 1024 * 1024
PARTIAL_PREFIX = ".securex-"
STALE_PARTIAL_SECONDS = 2 * STALLED_SECONDS


@dataclass
class _Target:
    handle: BinaryIO
    partial: Path
    directory: Path
    name: str
    size: int                 # as offered: what it will take on disk once all written
    device: int               # the file system it is on (os.stat's st_dev)
    tree: TreeHash = field(default_factory=TreeHash)      # the chunks' leaves so far, in order
    written: int = 0
    flushed: int = 0          # bytes handed to the kernel's write-back so far


def open_exclusive(path: Path) -> BinaryIO:
    """Create ``path`` for writing; fail if anything (a file, a link) is there already.
    It is locked while open, which tells any Secure X tidying the folder that it is live."""
    handle = path.open("xb")
    if fcntl is not None:
        with contextlib.suppress(OSError):
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    return handle


def partial_owner(public_key: bytes) -> str:
    """The part of a partial file's name that says whose it is (one identity: one
    running Secure X on a computer, which the identity's lock ensures)."""
    return hashlib.sha256(b"securex partial file owner" + public_key).hexdigest()[:8]


def _remove_stale_partials(directory: Path, ours: set[Path], owner: str) -> None:
    """Partial files left by a Secure X that was killed. Our own identity's from an
    earlier run go at once (a tester's finding: a receiver killed at 60% and started
    again left its 1.3 GB partial file beside the new one); another's only once not
    locked by a live one and untouched for twice the stall limit (a live transfer
    writes far more often, or gives up and deletes; a lock may not work on every file
    system, and a paused transfer must not lose its file)."""
    cutoff = time.time() - STALE_PARTIAL_SECONDS
    own_earlier = f"{PARTIAL_PREFIX}{owner}-" if owner else None
    with contextlib.suppress(OSError):
        for path in directory.glob(f"{PARTIAL_PREFIX}*.part"):
            if path not in ours:
                with contextlib.suppress(OSError):
                    _remove_if_dead(path, cutoff, own_earlier is not None and path.name.startswith(own_earlier))


def _remove_if_dead(path: Path, cutoff: float, ours_from_before: bool) -> None:
    # Not following a link, and not waiting: a named pipe would block the open until a writer came.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    try:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode) or (found.st_mtime >= cutoff and not ours_from_before):
            return
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)     # BlockingIOError: a live one has it
        path.unlink()
    finally:
        os.close(fd)


def _read_at(handle: BinaryIO, into: memoryview, offset: int) -> int:
    """Read up to ``len(into)`` bytes at ``offset``: a positioned read where there is one
    (threads may share the file), else seek and read (one thread only)."""
    if hasattr(os, "preadv"):
        total = 0
        while total < len(into) and (got := os.preadv(handle.fileno(), [into[total:]], offset + total)):
            total += got
        return total
    handle.seek(offset)
    return handle.readinto(into) or 0


def _why(error: OSError) -> str:
    return "the disk is full" if error.errno in (errno.ENOSPC, errno.EDQUOT) else (error.strerror or str(error))


class FileWorker:
    """One per session. ``submit`` never blocks for long (windows bound the queue);
    ``take_results`` returns what is done; ``stop`` ends the thread and deletes any
    partial file still open. ``threaded=False`` does each job at once, in the
    caller's thread (for sans-IO tests that drive everything in one thread);
    ``open_partial`` creates the partial file (tests inject a disk that fills up),
    ``link`` gives it its final name (tests inject a file system with short names);
    ``writeback_every`` is how much of a file received is written before the kernel
    is asked to start putting it on disk; ``recycle`` takes each sealed chunk back
    once it is opened (its buffer is then reused for another)."""

    def __init__(self, wake: Callable[[], None], *, threaded: bool = True,
                 open_partial: Callable[[Path], BinaryIO] = open_exclusive,
                 link: Callable[[Path, Path], None] = os.link,
                 writeback_every: int = EARLY_WRITEBACK_BYTES,
                 recycle: Callable[[Bytes], None] = lambda sealed: None,
                 free_space: Callable[[Path], int] = lambda folder: shutil.disk_usage(folder).free,
                 owner: str = "") -> None:
        self._wake = wake
        self._owner = owner           # partial_owner(): names the partial files this identity writes
        self._free_space = free_space
        self._recycle = recycle
        self._open_partial = open_partial
        self._link = link
        self._writeback_every = writeback_every
        self._jobs: queue.Queue[Job | None] = queue.Queue(maxsize=JOB_QUEUE_SIZE)
        self._results: queue.Queue[Result] = queue.Queue()
        self._sources: dict[bytes, BinaryIO] = {}
        self._hashed: dict[bytes, os.stat_result] = {}     # per file sent: as it was when hashed and offered
        self._seal_numbers: dict[bytes, int] = {}     # per file sent: the next chunk nonce counter
        self._targets: dict[bytes, _Target] = {}
        # One job at a time uses it: a chunk read from disk, or one just opened. Reused
        # rather than allocated per chunk (fresh half megabytes cost page faults).
        self._scratch = bytearray()
        self._thread: threading.Thread | None = None
        if threaded:
            self._thread = threading.Thread(target=self._run, name="securex files", daemon=True)
            self._thread.start()

    def submit(self, job: Job) -> None:
        """Never blocks: the transfer windows keep the queue short, and if it ever is
        full the job's transfer fails with a message instead of stalling the network."""
        if self._thread is None:
            self._handle(job)
            return
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            self._results.put(Failed(job.file_id, CancelReason.WRITE_FAILED,
                                     "Too much file work is waiting (the disk is too slow?); the transfer stopped."))
            self._wake()

    def take_results(self) -> list[Result]:
        results = []
        while True:
            try:
                results.append(self._results.get_nowait())
            except queue.Empty:
                return results

    def stop(self) -> None:
        if self._thread is None:
            self._close_all()
            return
        with contextlib.suppress(queue.Full):
            self._jobs.put(None, timeout=5)
        self._thread.join(10)

    # -- the thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while (job := self._jobs.get()) is not None:
                self._handle(job)
        finally:
            self._close_all()

    def _handle(self, job: Job) -> None:
        try:
            result = self._do(job)
        except Exception as error:   # a file job must never take the session down
            log.exception("file job failed")
            self._forget(job.file_id, delete=True)
            result = Failed(job.file_id, CancelReason.WRITE_FAILED, f"File transfer failed ({error}).")
        if result is not None:
            self._results.put(result)
            self._wake()

    def _close_all(self) -> None:
        for file_id in list(self._sources) + list(self._targets):
            self._forget(file_id, delete=True)

    def _do(self, job: Job) -> Result | None:
        if isinstance(job, ReadChunk):
            return self._read(job)
        if isinstance(job, WriteChunk):
            return self._write(job)
        if isinstance(job, HashSource):
            return self._hash(job)
        if isinstance(job, OpenTarget):
            return self._open(job)
        if isinstance(job, FinishTarget):
            return self._finish(job)
        if isinstance(job, Discard):
            self._forget(job.file_id, delete=True)
        return None

    # -- sending ---------------------------------------------------------------------------------

    def _hash(self, job: HashSource) -> Result:
        try:
            handle = job.path.open("rb")
        except OSError as error:
            return Failed(job.file_id, CancelReason.READ_FAILED,
                          f"Cannot send {job.path}: {error.strerror or error}.")
        try:
            found = os.fstat(handle.fileno())
            if not stat.S_ISREG(found.st_mode):
                raise IsADirectoryError(errno.EISDIR, "not a regular file")
            if found.st_size > job.max_size:
                handle.close()
                return Hashed(job.file_id, found.st_size, b"")     # refused for its size: no need to read it
            digest = self._digest(handle, found.st_size, job.chunk_size)
        except OSError as error:
            handle.close()
            return Failed(job.file_id, CancelReason.READ_FAILED,
                          f"Cannot send {job.path}: {error.strerror or error}.")
        self._sources[job.file_id] = handle
        self._hashed[job.file_id] = found
        return Hashed(job.file_id, found.st_size, digest)

    def _digest(self, handle: BinaryIO, size: int, chunk_size: int) -> bytes:
        """The file's digest: its chunks' leaves hashed in contiguous runs, one per thread
        (positioned reads share no offset; hashlib and the reads let go of the GIL)."""
        chunks = max(1, math.ceil(size / chunk_size))
        leaves: list[bytes] = [b""] * chunks

        def hash_run(first: int, end: int) -> None:
            block = memoryview(bytearray(chunk_size))
            for index in range(first, end):
                expected = min(chunk_size, size - index * chunk_size)
                if _read_at(handle, block[:expected], index * chunk_size) != expected:
                    raise OSError(errno.EIO, "it got shorter while it was being read")
                leaves[index] = tree_leaf_hash(block[:expected])

        threads = min(HASH_THREADS, chunks) if hasattr(os, "preadv") else 1
        per_thread = math.ceil(chunks / threads)
        runs = [(first, min(chunks, first + per_thread)) for first in range(0, chunks, per_thread)]
        if len(runs) == 1:
            hash_run(*runs[0])
        else:
            with ThreadPoolExecutor(len(runs), thread_name_prefix="securex hash") as pool:
                for done in [pool.submit(hash_run, first, end) for first, end in runs]:
                    done.result()          # an OSError in any run is the whole hash's
        return tree_root(leaves)

    def _read(self, job: ReadChunk) -> Result:
        handle = self._sources.get(job.file_id)
        if handle is None:
            return Failed(job.file_id, CancelReason.READ_FAILED, "The file to send is no longer open.")
        offset = job.index * job.chunk_size
        # Exactly what the offer implies: never past the size hashed, should the file have grown since.
        hashed = self._hashed[job.file_id]
        data = self._scratch_for(max(0, min(job.chunk_size, hashed.st_size - offset)))
        name = os.path.basename(handle.name)
        try:
            got = _read_at(handle, data, offset)
            now = os.fstat(handle.fileno())
        except OSError as error:
            return Failed(job.file_id, CancelReason.READ_FAILED, f"Reading {name} failed: {error.strerror}.")
        if got != len(data):
            return Failed(job.file_id, CancelReason.READ_FAILED,
                          f"{name} got shorter while it was being sent; sending stopped.")
        if now.st_size == hashed.st_size and now.st_mtime_ns != hashed.st_mtime_ns:
            # Written over in place: the receivers would take it all, then find it does not
            # match. (A file that grew is taken to be appended to: what was offered is sent.)
            return Failed(job.file_id, CancelReason.READ_FAILED,
                          f"{name} was changed while it was being sent; sending stopped. Send it again once "
                          "it is saved.")
        seal_no = self._seal_numbers.get(job.file_id, 0)
        self._seal_numbers[job.file_id] = seal_no + 1
        # The BULK body in one buffer: its header, then the chunk sealed straight into it.
        body = bytearray(BULK_HEADER_BYTES + len(data) + TAG_BYTES)
        body[:BULK_HEADER_BYTES] = peer_wire.bulk_header(job.file_id, job.index, job.final, seal_no)
        seal_chunk_into(job.key, job.file_id, job.index, job.final, data, seal_no,
                        memoryview(body)[BULK_HEADER_BYTES:])
        return ChunkRead(job.file_id, job.index, memoryview(body).toreadonly())

    def _scratch_for(self, size: int) -> memoryview:
        if len(self._scratch) < size:
            self._scratch = bytearray(size)
        return memoryview(self._scratch)[:size]

    # -- receiving -------------------------------------------------------------------------------

    def _open(self, job: OpenTarget) -> Result:
        try:
            job.directory.mkdir(parents=True, exist_ok=True)
            _remove_stale_partials(job.directory, {target.partial for target in self._targets.values()}, self._owner)
            device = os.stat(job.directory).st_dev
            if job.check_room and (no_room := self._no_room(job, device)) is not None:
                return no_room
            # Not the offered name: a long one plus a suffix could pass the file system's limit.
            # Its own random part: the same offer may be taken by another Secure X here, or
            # again after a restart, while the last run's file is still there.
            owner = f"{self._owner}-" if self._owner else ""
            partial = job.directory / f"{PARTIAL_PREFIX}{owner}{job.file_id.hex()[:16]}-{secrets.token_hex(4)}.part"
            handle = self._open_partial(partial)
        except OSError as error:     # a folder that cannot be written to: the user can choose another
            return Failed(job.file_id, CancelReason.WRITE_FAILED,
                          f"Cannot save {job.name} in {job.directory}: {_why(error)}.", can_retry=True)
        self._targets[job.file_id] = _Target(handle, partial, job.directory, job.name, job.size, device)
        return Opened(job.file_id, partial)

    def _no_room(self, job: OpenTarget, device: int) -> Failed | None:
        """Said now, not after minutes of receiving what cannot all be kept. What files
        already being received on the same disk have still to write is not free."""
        owed = sum(t.size - t.written for t in self._targets.values() if t.device == device)
        free = max(0, self._free_space(job.directory) - owed)
        if free >= job.size:
            return None
        return Failed(job.file_id, CancelReason.NO_ROOM,
                      f"Not enough free space to save {job.name} ({human_size(job.size)}) in {job.directory}: "
                      f"{human_size(free)} free" + (" once the files being received there are saved." if owed else "."),
                      can_retry=True)

    def _write(self, job: WriteChunk) -> Result:
        target = self._targets.get(job.file_id)
        if target is None:
            return Failed(job.file_id, CancelReason.WRITE_FAILED, "The file being received is no longer open.")
        chunk = job.chunk
        try:
            data = open_chunk_into(job.key, job.file_id, chunk.index, chunk.final, chunk.sealed, chunk.seal_no,
                                   self._scratch_for(len(chunk.sealed)))
        except DecryptionError:
            self._forget(job.file_id, delete=True)
            return Failed(job.file_id, CancelReason.VERIFICATION,
                          f"Receiving {target.name} failed verification (a chunk was altered or forged); "
                          "the partial file was deleted.")
        finally:
            self._recycle(chunk.sealed)       # opened (into the scratch buffer) or not, never read again
        try:
            target.handle.write(data)
            if target.written + len(data) - target.flushed >= self._writeback_every:
                self._start_writeback(target, target.written + len(data))
        except OSError as error:
            self._forget(job.file_id, delete=True)
            return Failed(job.file_id, CancelReason.WRITE_FAILED,
                          f"Could not save {target.name} in {target.directory}: {_why(error)}; the partial file "
                          "was deleted.")
        target.tree.add_leaf_hash(tree_leaf_hash(data))
        target.written += len(data)
        return Written(job.file_id, chunk.index)

    @staticmethod
    def _start_writeback(target: _Target, written: int) -> None:
        """Have the kernel start writing the first ``written`` bytes (and drop them from
        the page cache): the fsync before the file takes its name then has little left
        to wait for, and a large file does not push everything else out of memory. A
        failed flush is a failed write (the caller reports it); the advice is a hint."""
        target.handle.flush()
        with contextlib.suppress(OSError, AttributeError):   # no posix_fadvise on macOS or Windows
            os.posix_fadvise(target.handle.fileno(), target.flushed, written - target.flushed,
                             os.POSIX_FADV_DONTNEED)
        target.flushed = written

    def _finish(self, job: FinishTarget) -> Result:
        target = self._targets.get(job.file_id)
        if target is None:
            return Failed(job.file_id, CancelReason.WRITE_FAILED, "The file being received is no longer open.")
        try:
            target.handle.flush()
            os.fsync(target.handle.fileno())
            target.handle.close()
        except OSError as error:
            self._forget(job.file_id, delete=True)
            return Failed(job.file_id, CancelReason.WRITE_FAILED,
                          f"Could not save {target.name} in {target.directory}: {_why(error)}; the partial file "
                          "was deleted.")
        if (target.written != job.size or target.tree.leaves != job.chunks
                or not constant_time_equal(target.tree.root(), job.digest)):
            self._forget(job.file_id, delete=True)
            return Failed(job.file_id, CancelReason.VERIFICATION,
                          f"Receiving {target.name} failed verification: {human_size(target.written)} arrived and "
                          "its SHA-256 digest does not match the offer; the partial file was deleted.")
        try:
            final = self._place(target)
        except OSError as error:
            self._forget(job.file_id, delete=True)
            return Failed(job.file_id, CancelReason.WRITE_FAILED,
                          f"Could not save {target.name} in {target.directory}: {_why(error)}; the partial file "
                          "was deleted.")
        self._targets.pop(job.file_id, None)
        if final is None:
            target.partial.unlink(missing_ok=True)
            return Failed(job.file_id, CancelReason.WRITE_FAILED, f"Could not give {target.name} its name.")
        # Tidied at the end too: a restarted receiver's new copy may have begun beside its old one.
        _remove_stale_partials(target.directory, {t.partial for t in self._targets.values()}, self._owner)
        return Saved(job.file_id, final)

    def _place(self, target: _Target) -> Path | None:
        """Link the verified partial file to a free name (never over an existing file),
        shortened where the file system allows only shorter names than the offer's."""
        name: str | None = target.name
        while name is not None:
            try:
                return self._place_as(target, name)
            except OSError as error:
                if error.errno != errno.ENAMETOOLONG:
                    raise
            name = shortened_file_name(name)
        return None

    def _place_as(self, target: _Target, name: str) -> Path | None:
        """``name``, else ``name (1)``, ``name (2)``…: the first that is free."""
        stem, dot, extension = name.rpartition(".")
        if not dot or not stem:
            stem, extension = name, ""
        for number in range(1000):
            candidate = target.directory / (name if number == 0 else
                                            f"{stem} ({number}){'.' + extension if extension else ''}")
            try:
                self._link(target.partial, candidate)    # fails if the name is taken: no race, no overwrite
            except FileExistsError:
                continue
            except OSError as error:
                if error.errno == errno.ENAMETOOLONG:
                    raise                                  # _place tries a shorter name
                if os.path.lexists(candidate):
                    continue
                target.partial.rename(candidate)          # a file system without hard links
                return candidate
            target.partial.unlink(missing_ok=True)
            return candidate
        return None

    def _forget(self, file_id: bytes, *, delete: bool) -> None:
        source = self._sources.pop(file_id, None)
        self._hashed.pop(file_id, None)
        if source is not None:
            source.close()
        # The seal numbers stay: a file is only ever sealed by this worker, and a number
        # must never come back for the same key even if the same transfer is restarted.
        target = self._targets.pop(file_id, None)
        if target is not None:
            with contextlib.suppress(OSError):
                target.handle.close()
            if delete:
                target.partial.unlink(missing_ok=True)
