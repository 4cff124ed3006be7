"""Peak memory of one measured call: resident set (sampled) on every device, allocator peak on CUDA.

``ru_maxrss`` is a process-lifetime high-water mark and cannot be reset between benchmarks, so the resident peak of a
call is sampled from ``/proc/self/statm`` by a background thread (every 2 ms: short spikes can be missed, never
invented).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

_PAGE = os.sysconf("SC_PAGE_SIZE")


def resident_bytes() -> int:
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * _PAGE


@dataclass
class MemoryPeak:
    rss_before: int = 0
    rss_peak: int = 0
    cuda_peak: int | None = None

    @property
    def rss_growth(self) -> int:
        """How far the call pushed resident memory above where it started."""
        return max(0, self.rss_peak - self.rss_before)

    def as_extra_info(self) -> dict[str, int | None]:
        return {"peak_rss_bytes": self.rss_peak, "rss_growth_bytes": self.rss_growth, "cuda_peak_bytes": self.cuda_peak}


@contextmanager
def track_memory(device: torch.device | None = None, interval: float = 0.002) -> Iterator[MemoryPeak]:
    peak = MemoryPeak(rss_before=resident_bytes())
    peak.rss_peak = peak.rss_before
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak.rss_peak = max(peak.rss_peak, resident_bytes())
            stop.wait(interval)

    cuda = device is not None and device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        if cuda:
            torch.cuda.synchronize(device)
            peak.cuda_peak = torch.cuda.max_memory_allocated(device)
        stop.set()
        sampler.join()
        peak.rss_peak = max(peak.rss_peak, resident_bytes())
