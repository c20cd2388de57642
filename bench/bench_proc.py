"""What another process costs, read from /proc (Linux): CPU time and memory.

``cpu_seconds`` sums the nanosecond run times the scheduler keeps per thread
(``/proc/PID/task/*/schedstat``): user plus kernel time, precise enough for a
flood that lasts a second, where the 10 ms ticks of ``/proc/PID/stat`` are not.
It counts live threads only, so only a difference over a window in which no
thread of that process starts or ends is meaningful (the benchmark takes its
windows while every connection is established). Without schedstat it falls
back to the ticks.
"""

from __future__ import annotations

import os
import platform

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + kernel) of the live threads of ``pid``, in seconds."""
    total, found = 0, False
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        tasks = []
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as stat:
                total += int(stat.read().split()[0])
            found = True
        except (OSError, ValueError, IndexError):
            continue     # the thread ended meanwhile
    if found:
        return total / 1e9
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def memory_kib(pid: int, key: str = "VmRSS") -> int:
    """A line of /proc/PID/status in KiB: VmRSS (resident now), VmHWM (peak resident)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(f"no {key} in /proc/{pid}/status")


def machine_summary() -> str:
    """CPU model, cores, interpreter, pycryptodome and the load when the run started."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
                         model)
    except OSError:
        pass
    import Crypto

    load = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    return (f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"pycryptodome {Crypto.__version__}, Linux {platform.release()}, load average at start {load}")
