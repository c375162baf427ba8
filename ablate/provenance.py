"""Where a result came from: code version, library versions, hardware, command line, times."""

import datetime
import importlib.metadata
import os
import platform
import shlex
import socket
import subprocess
import sys
from pathlib import Path

from ablate.gitrepo import git

_REPO = Path(__file__).resolve().parent.parent

# The environment variables that change what a run does or gets, besides every ABLATE_* one: which variants can run
# (TRITON_INTERPRET=1 runs the Triton kernels on the CPU), the threads (and so the float sums) of torch, the GPUs seen.
ENVIRONMENT = ("TRITON_INTERPRET", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "PYTHONHASHSEED",
               "CUBLAS_WORKSPACE_CONFIG", "TORCHINDUCTOR_COMPILE_THREADS")
ENVIRONMENT_PREFIX = "ABLATE_"


def environment() -> dict:
    """{name: value} of the ENVIRONMENT variables (and every ABLATE_* one) set in this process, sorted by name."""
    return {name: value for name, value in sorted(os.environ.items())
            if name in ENVIRONMENT or name.startswith(ENVIRONMENT_PREFIX)}


def command_line() -> str:
    """This process's command as a shell would rerun it: the relevant environment first, then the interpreter's own
    command line ("TRITON_INTERPRET=1 .venv/bin/python -m ablate grid default ..."), each word quoted where a shell
    needs it."""
    prefix = [f"{name}={shlex.quote(value)}" for name, value in environment().items()]
    return " ".join([*prefix, shlex.join(sys.orig_argv)])


def _git(*args) -> str | None:
    """git's answer about this package's own checkout; None without git, outside a checkout, or past 10 s."""
    try:
        out = git(_REPO, *args, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _nvidia_driver() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def collect() -> dict:
    """A flat dict: git commit and dirty flag, versions, CPU, GPU, CUDA, driver, host, the relevant environment
    variables (as NAME=value words) and the command line with them in front."""
    import torch  # here: `now` and cpu_model serve the report, which never loads torch

    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain")
    info = {
        "git_commit": commit,
        "git_dirty": None if status is None else bool(status),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "triton": _version("triton"),
        "numpy": _version("numpy"),
        "pandas": _version("pandas"),
        "scikit_learn": _version("scikit-learn"),
        "ablate": _version("ablate"),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "environment": " ".join(f"{k}={shlex.quote(v)}" for k, v in environment().items()),
        "command": command_line(),
        "cuda": torch.version.cuda,
        "gpu": None,
        "driver": None,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["driver"] = _nvidia_driver()
    return info
