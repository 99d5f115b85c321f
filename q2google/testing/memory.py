"""Peak memory of this process, for tests and benchmarks that show memory stays flat (Linux)."""

from __future__ import annotations

from pathlib import Path


def peak_rss_mib() -> float:
    """This process's peak resident set size (``VmHWM``), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def reset_peak_rss() -> float:
    """Reset the peak to the current size (``clear_refs`` 5); return it, in MiB."""
    Path("/proc/self/clear_refs").write_text("5")
    return peak_rss_mib()
