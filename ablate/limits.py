"""Upper bounds on what an option may ask for, checked before anything is started or allocated.

    check_int_option(name, value)              an integer within int64 (what tables, torch and pyarrow hold)
    check_process_count(option, n, bytes_each) at most the cores here (or $ABLATE_MAX_PROCESSES), and n times
                                               the memory one process needs within the host's memory
    ENVIRONMENT, environment_limit(name)       the ABLATE_* variables, each an integer in its range, read strictly
    check_environment()                        every ABLATE_* variable that is set, checked (the CLI does it first)
Each refusal is one line naming the option or variable, what it asked for and the limit.

    SearchRange(low, high)                     the values a tune searches an option or parameter over
"""

import math
import os
import re
from dataclasses import dataclass

INT64_MAX = 2**63 - 1
# A seed reaches scikit-learn's splitter (random_state: an integer in [0, 2**32 - 1], numpy's legacy RandomState),
# numpy's default_rng (non-negative) and torch.manual_seed: the range all of them take.
SEED_MAX = 2**32 - 1
FLOAT32_MAX = 3.4028234663852886e38  # every float option meets float32 tensors (optimizer steps, the loss)
PROCESSES_ENV = "ABLATE_MAX_PROCESSES"
FEATURE_ROWS_ENV = "ABLATE_MAX_FEATURE_ROWS"
DEFAULT_FEATURE_ROWS = 200_000  # test samples of one cell: Fashion-MNIST has 10,000, 20 times fewer
HOST_FRACTION = 0.8  # the share of physical memory a run may plan to fill
# What one extra process (a rank, a worker) holds before its own work: an interpreter with torch imported, a few
# hundred MB resident.
PROCESS_BASE_BYTES = 300 * 2**20


class OptionError(ValueError):
    """An option's value that cannot run; `key` names the option (a cell option's grid key: its flag is --KEY with
    dashes), so that a command line can name the flag."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def check_int_option(name: str, value: int, low: int = 1) -> int:
    """value as an int, refused (ValueError naming `name`) below `low` or beyond int64."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low or value > INT64_MAX:
        raise ValueError(f"{name} must lie in [{low}, {INT64_MAX}] (int64), got {value}")
    return value


def physical_memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


@dataclass(frozen=True)
class EnvironmentLimit:
    """An ABLATE_* environment variable: an integer in [low, high], written in ASCII digits alone; what it limits,
    and what holds when it is unset."""

    name: str
    low: int
    high: int
    limits: str
    unset: str

    def help(self) -> str:
        return f"${self.name}: {self.limits}, an integer in [{self.low}, {self.high:,}] (unset: {self.unset})."


ENVIRONMENT = {limit.name: limit for limit in (
    EnvironmentLimit(PROCESSES_ENV, 1, 4096, "the most processes one command starts (grid workers, ranks)",
                     "the cores this process may use"),
    EnvironmentLimit(FEATURE_ROWS_ENV, 1, INT64_MAX, "the most test samples a cell's features file (.npz) may "
                     "claim when a report reads it", f"{DEFAULT_FEATURE_ROWS:,}"),
)}
_DIGITS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() and int() take "²" or Arabic-Indic digits too
_SHOWN_CHARACTERS = 40  # of a refused value, in the error


def environment_limit(name: str) -> int | None:
    """The value of the ABLATE_* variable `name` (an ENVIRONMENT entry), None when it is unset or empty; a
    ValueError naming the variable, its range and the value otherwise."""
    limit = ENVIRONMENT[name]
    text = os.environ.get(name, "")
    if not text:
        return None
    in_range = _DIGITS.fullmatch(text) is not None and len(text) <= 20 and limit.low <= int(text) <= limit.high
    if not in_range:
        shown = text if len(text) <= _SHOWN_CHARACTERS else text[:_SHOWN_CHARACTERS] + f"... ({len(text):,} characters)"
        raise ValueError(f"${name} must be an integer in [{limit.low}, {limit.high}] written in the digits 0-9, "
                         f"got {shown!r}")
    return int(text)


def check_environment() -> None:
    """Check every ABLATE_* variable that is set (ValueError naming the first bad one): a bad limit fails the
    command before it starts, instead of where (or whether) the limit is read."""
    for name in ENVIRONMENT:
        environment_limit(name)


def environment_help() -> str:
    """One paragraph for `ablate --help`: each variable, what it limits and its range."""
    return "Environment: " + " ".join(limit.help() for limit in ENVIRONMENT.values())


def process_limit() -> int:
    """The most processes one run may start: $ABLATE_MAX_PROCESSES, else the cores this process may use."""
    limit = environment_limit(PROCESSES_ENV)
    if limit is not None:
        return limit
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
