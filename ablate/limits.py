"""Upper bounds on what an option may ask for, checked before anything is started or allocated.

    check_int_option(name, value)              an integer within int64 (what tables, torch and pyarrow hold)
    check_process_count(option, n, bytes_each) at most the cores here (or $ABLATE_MAX_PROCESSES), and n times
                                               the memory one process needs within the host's memory
Each refusal is one line naming the option, what it asked for and the limit.

    SearchRange(low, high)                     the values a tune searches an option or parameter over
"""

import math
import os
from dataclasses import dataclass

INT64_MAX = 2**63 - 1
PROCESSES_ENV = "ABLATE_MAX_PROCESSES"
HOST_FRACTION = 0.8  # the share of physical memory a run may plan to fill
# What one extra process (a rank, a worker) holds before its own work: an interpreter with torch imported, a few
# hundred MB resident.
PROCESS_BASE_BYTES = 300 * 2**20


def check_int_option(name: str, value: int, low: int = 1) -> int:
    """value as an int, refused (ValueError naming `name`) below `low` or beyond int64."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low or value > INT64_MAX:
        raise ValueError(f"{name} must lie in [{low}, {INT64_MAX}] (int64), got {value}")
    return value


def physical_memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def process_limit() -> int:
    """The most processes one run may start: $ABLATE_MAX_PROCESSES, else the cores this process may use."""
    text = os.environ.get(PROCESSES_ENV, "")
    if text:
        if not text.isdigit() or int(text) < 1:
            raise ValueError(f"${PROCESSES_ENV} must be a positive integer, got {text!r}")
        return int(text)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def check_process_count(option: str, count: int, bytes_each: int = 0) -> None:
    """Refuse `count` processes (ValueError naming `option`) beyond process_limit(), or whose memory, each
    PROCESS_BASE_BYTES + bytes_each, exceeds HOST_FRACTION of this host's memory."""
    limit = process_limit()
    if count > limit:
        raise ValueError(f"{option} {count} is over the limit of {limit} processes here (the cores; set "
                         f"${PROCESSES_ENV} to change it)")
    each = PROCESS_BASE_BYTES + bytes_each
    budget = HOST_FRACTION * physical_memory_bytes()
    if count * each > budget:
        raise ValueError(f"{option} {count} needs about {count * each / 1e9:,.1f} GB ({each / 1e9:,.2f} GB per "
                         f"process), over the {budget / 1e9:,.1f} GB available here")


# A range whose high end is at least this many times its low end spans decades: it is searched on a log scale.
LOG_SPAN = 100.0


@dataclass(frozen=True)
class SearchRange:
    """The values a tune searches an option or a parameter over: [low, high], on a log scale when low > 0 and high
    spans at least LOG_SPAN times low (a learning rate, a loss weight); integer: integers only."""

    low: float
    high: float
    integer: bool = False

    def __post_init__(self):
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ValueError(f"a search range needs finite low < high, got [{self.low}, {self.high}]")

    @property
    def log(self) -> bool:
        return self.low > 0 and self.high >= LOG_SPAN * self.low

    def __contains__(self, value: object) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and self.low <= value <= self.high

    def text(self) -> str:
        scale = " (log)" if self.log else ""
        return f"[{self.low:g}, {self.high:g}]{scale}" + (" (integer)" if self.integer else "")

    def narrowed(self, name: str, low: float, high: float) -> "SearchRange":
        """[low, high] within this range (a ValueError naming `name` otherwise)."""
        if not (low in self and high in self and low < high):
            raise ValueError(f"{name}: the range [{low:g}, {high:g}] must lie within {self.text()} with low < high")
        if self.integer and not (float(low).is_integer() and float(high).is_integer()):
            raise ValueError(f"{name}: an integer parameter needs integer bounds, got [{low:g}, {high:g}]")
        return SearchRange(low, high, self.integer)
