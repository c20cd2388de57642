"""Time the cryptographic primitives Secure X uses, in this interpreter.

    python bench/crypto_bench.py [--seconds S]

Prints one row per operation (median of several timed batches, in microseconds
per operation) and the pycryptodome version, so two runs under different
versions can be compared side by side. Standard library and pycryptodome only.
``relay_bench.py`` runs the same rows as its "crypto" phase (``run_phase``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import Crypto
from Crypto.Cipher import AES
from Crypto.Protocol.KDF import scrypt
from Crypto.PublicKey import ECC
from Crypto.Signature import eddsa

import crypto_utils

if TYPE_CHECKING:
    from bench_report import Report
    from bench_settings import Settings


def per_op_microseconds(operation: Callable[[], object], seconds: float,
                        min_batches: int = 3) -> tuple[float, int]:
    """Median time of one call, over batches filling about ``seconds`` (at least
    ``min_batches`` of them)."""
    operation()   # warm-up
    start = time.perf_counter()
    operation()
    single = max(time.perf_counter() - start, 1e-7)
    batch = max(1, int(min(0.05, seconds / 3) / single))
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(samples) < min_batches:
        start = time.perf_counter()
        for _ in range(batch):
            operation()
        samples.append((time.perf_counter() - start) / batch)
    return statistics.median(samples) * 1e6, batch * len(samples)


def operations() -> dict[str, Callable[[], object]]:
    key = os.urandom(32)
    small, large = os.urandom(100), os.urandom(64 * 1024)
    counter = iter(range(2**62))

    def gcm_seal(data: bytes) -> Callable[[], object]:
        def seal() -> bytes:
            cipher = AES.new(key, AES.MODE_GCM, nonce=next(counter).to_bytes(12, "big"), mac_len=16)
            cipher.update(b"associated data")
            ciphertext, tag = cipher.encrypt_and_digest(data)
            return ciphertext + tag
        return seal

    p256 = ECC.generate(curve="P-256")
    point = p256.pointQ
    scalar = int.from_bytes(os.urandom(32), "big") % int(p256._curve.order)
    identity = ECC.generate(curve="Ed25519")
    signer = eddsa.new(identity, "rfc8032")
    message = os.urandom(32)
    signature = signer.sign(message)
    verifier = eddsa.new(identity.public_key(), "rfc8032")
    salt = os.urandom(16)
    n = crypto_utils.SCRYPT_N
    return {
        "AES-256-GCM seal, 100 B": gcm_seal(small),
        "AES-256-GCM seal, 64 KiB": gcm_seal(large),
        "P-256 scalar multiplication": lambda: point * scalar,
        "Ed25519 sign": lambda: signer.sign(message),
        "Ed25519 verify": lambda: verifier.verify(message, signature),
        f"scrypt N=2^{n.bit_length() - 1} r=8 p=1 (pycryptodome)":
            lambda: scrypt(b"tulip-harbor-quartz", salt, 32, N=n, r=8, p=1),
        f"scrypt N=2^{n.bit_length() - 1} r=8 p=1 (hashlib)":
            lambda: hashlib.scrypt(b"tulip-harbor-quartz", salt=salt, n=n, r=8, p=1, dklen=32,
                                   maxmem=256 * 1024 * 1024),
    }


def measure(seconds: float, min_batches: int = 3) -> Iterator[tuple[str, float, int]]:
    """(operation, microseconds per call, calls timed) for every operation."""
    for name, operation in operations().items():
        micros, count = per_op_microseconds(operation, seconds, min_batches)
        yield name, micros, count


def run_phase(report: Report, settings: Settings) -> None:
    report.section("crypto", f"pycryptodome {Crypto.__version__} primitives in this interpreter (median of "
                             "timed batches)")
    for name, micros, count in measure(settings.crypto_seconds, settings.crypto_min_batches):
        report.figure(f"crypto {name}", f"{micros:,.1f} us/op ({count:,} timed)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time spent on each operation")
    args = parser.parse_args(argv)
    print(f"pycryptodome {Crypto.__version__}, Python {platform.python_version()}, "
          f"{os.cpu_count()} cores")
    for name, micros, count in measure(args.seconds):
        print(f"  {name:<44} {micros:>12,.1f} us/op  ({count:,} timed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
