"""`ablate check TARGET`: is someone's center loss right, which convention is it, how fast against ours? With
--step: which update rule does their training step apply to the centers?"""

import math
import signal

import click
import pandas as pd
import torch

from ablate.check.isolated import DEFAULT_TIMEOUT_S, TIMEOUT_RANGE_S, TargetAborted, TargetProcess
from ablate.check.suite import JUDGED, TIMING_CLASSES, agrees, as_dicts, run_suite
from ablate.check.target import TargetError, check_target_form, parse_init
from ablate.check.update_verdict import judge_update
from ablate.escape import terminal_line
from ablate.io import atomic_write_json, check_writable
from ablate.loss import available_variants, get_variant
from ablate.loss.devices import DEVICES, device_present
from ablate.signals import termination_raises

MESSAGE_CHARS = 1000  # of an error line; the table's cells are cut at CELL_CHARS
CELL_CHARS = 300


def _variant_list(ctx, param, value):
    return None if value is None else tuple(v.strip() for v in value.split(",") if v.strip())


class Seconds(click.ParamType):
    """A finite number of seconds within TIMEOUT_RANGE_S (NaN, infinities and 1e308 are refused, not waited on)."""

    name = "seconds"

    def convert(self, value, param, ctx):
        low, high = TIMEOUT_RANGE_S
        try:
            seconds = float(value)
        except (TypeError, ValueError, OverflowError):
            seconds = math.nan
        if not low <= seconds <= high:  # NaN compares false
            self.fail(f"expected a finite number of seconds in [{low:g}, {high:g}], got "
                      f"{terminal_line(str(value), 40)}", param, ctx)
        return seconds


class Stopped(Exception):
    """SIGTERM or SIGHUP reached `ablate check` (the argument names it): the target is ended, the exit status is
    128 + the signal's number, as a shell reports a process that signal ended."""


def _refused(message, hint: str) -> click.BadParameter:
    """A usage error naming `hint`, its message one bounded line whatever the target or the user put in it."""
    return click.BadParameter(terminal_line(str(message), MESSAGE_CHARS), param_hint=hint)


@click.command("check")
@click.argument("target")
@click.option("--init", "init", multiple=True, metavar="KEY=VALUE",
              help="A constructor argument of an nn.Module TARGET (repeatable), e.g. --init use_gpu=False.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the verdicts to this JSON file.")
@click.option("--timing/--no-timing", default=True, show_default=True,
              help="Time TARGET against the built-in variants at C = 10, 1000, 10000.")
@click.option("--device", type=DEVICES.choice(), default="cpu", show_default=True,
              help="Where TARGET runs, for the checks and the timing (the reference runs in float64 on the CPU).")
@click.option("--variants", callback=_variant_list,
              help="Comma list of built-in variants to time against (default: all timed on DEVICE).")
@click.option("--timeout", type=Seconds(), default=DEFAULT_TIMEOUT_S, show_default=True,
              help=f"Seconds one call of TARGET (or one training step) may take (it runs in a process of its own) "
                   f"before the check stops; {TIMEOUT_RANGE_S[0]:g} to {TIMEOUT_RANGE_S[1]:g}.")
@click.option("--step", "step_spec", metavar="FILE.py:FUNC|forward|update",
              help="Judge how the centers move instead of the loss: FUNC(module, features, labels, lam) does one "
                   "training step as your loop does; 'forward' for a module that moves its centers in forward, "
                   "'update' for one with an update(features, labels) method.")
@click.option("--centers", "centers_attr", metavar="NAME",
              help="With --step: the module's attribute that holds the (C, D) centers (dotted for a submodule's); "
                   "default: the one (C, D) tensor it owns.")
def check_command(target, init, json_path, timing, device, variants, timeout, step_spec, centers_attr):
    """Check TARGET against the float64 reference and print a verdict table.

    TARGET is pkg.mod:attr or path/to/file.py:attr naming a function (features, labels, centers) -> loss or an
    nn.Module class built as Cls(num_classes=C, feat_dim=D) whose forward is (features, labels) and which owns one
    (C, D) tensor of centers; or the name of a registered variant. Exits 0 when it agrees with the reference under
    some convention (loss, gradients, edge cases in float64), 1 otherwise, and 1 when TARGET hangs past --timeout,
    ends its process or leaves processes running (all of them are killed). TARGET runs in a child process, a session
    of its own, on copies of the inputs; changing one is a failed call. What it prints comes back on stderr, marked,
    escaped and capped. SIGTERM exits 143, Ctrl-C 130, the target killed.

    With --step, TARGET is an nn.Module class and the check runs training steps on controlled batches and fits the
    centers' motion against the update rules (paper, sgd, ema): it exits 0 when one rule with one alpha explains
    every step, 1 otherwise (a lambda-dependent alpha, weight decay or momentum on the centers, duplicates applied
    one after another, centers that never move).
    """
    try:
        check_target_form(target)
    except TargetError as exc:
        raise _refused(exc, "TARGET") from None
    try:
        init_values = parse_init(init)
    except TargetError as exc:
        raise _refused(exc, "--init") from None
    _check_options(step_spec, centers_attr)
    if json_path is not None:
        try:
            check_writable(json_path)
        except ValueError as exc:
            raise _refused(exc, "--json") from None
    if not device_present(device):
        raise click.BadParameter(f"torch sees no {device} device here; use --device cpu", param_hint="--device")
    dev = torch.device(device)
    loaded, blamed = None, "TARGET"  # what a TargetError names: after loading, the step too
    with termination_raises(Stopped):
        try:
            loaded = TargetProcess(target, init_values, dev, timeout)
            blamed = "TARGET or --step" if step_spec else blamed
            if step_spec is None:
                _check(loaded, target, dev, variants, timing, json_path)
            else:
                _check_step(loaded, target, step_spec, centers_attr, json_path)
        except (KeyboardInterrupt, Stopped) as exc:
            _stopped(loaded, target, exc)
        except TargetError as exc:
            raise _refused(exc, blamed) from None
        except TargetAborted as exc:
            _aborted(target, exc, json_path)
        finally:
            if loaded is not None:
                loaded.close()


def _stopped(loaded, target: str, exc: BaseException) -> None:
    """Ctrl-C (exit 130), SIGTERM (143) or SIGHUP (129): every process of the target killed, one line, the status a
    shell gives a process that signal ended. A second signal meanwhile is ignored: the cleanup finishes."""
    name = str(exc) if isinstance(exc, Stopped) else "SIGINT"
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        killed = loaded.close() if loaded is not None else []
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    also = f" and {len(killed)} other process{'es' if len(killed) > 1 else ''} of it" if killed else ""
    click.echo(f"{terminal_line(target, 200)}: check stopped by {name}; the target's process{also} ended", err=True)
    click.get_current_context().exit(128 + signal.Signals[name].value)


def _check_options(step_spec, centers_attr) -> None:
    """--step judges the update, not the loss: the timing's options and --step's own must not be mixed up."""
    ctx = click.get_current_context()
    if step_spec is None:
        if centers_attr is not None:
            raise click.BadParameter("names the centers a --step moves; give --step too", param_hint="--centers")
        return
    for name, option in (("timing", "--timing"), ("variants", "--variants")):
        if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE and ctx.params[name]:
            raise click.BadParameter("times the loss; with --step the check judges the center update and times "
                                     "nothing: leave it out", param_hint=option)


def _print_table(findings) -> None:
    rows = [{key: terminal_line(value, CELL_CHARS) if isinstance(value, str) else value for key, value in row.items()}
            for row in as_dicts(findings)]  # the target's own error messages among them
    table = pd.DataFrame(rows)
    table["passed"] = table["passed"].map({True: "yes", False: "NO"}).fillna("")
    table = table.rename(columns={"passed": "ok"})
    widths = {c: int(table[c].str.len().max()) for c in table.columns}
    text = table.to_string(index=False, justify="left", formatters={c: f"{{:<{w}}}".format for c, w in widths.items()})
    click.echo("\n".join(line.rstrip() for line in text.splitlines()))


def _check_step(loaded: TargetProcess, target: str, step_spec: str, centers_attr, json_path) -> None:
    if loaded.kind != "module":
        raise _refused(f"--step judges the centers a module owns; {target} is a {loaded.kind}, expected an nn.Module "
                       "class", "TARGET")
    verdict = judge_update(loaded, step_spec, centers_attr)
    loaded.finish()
    click.echo(f"ablate check {terminal_line(target, 200)} --step {terminal_line(step_spec, 200)}")
    _print_table(verdict.findings)
    click.echo("\n" + terminal_line(verdict.summary, MESSAGE_CHARS))
    if json_path is not None:
        atomic_write_json(json_path, {"target": target, "step": step_spec, "agrees": verdict.consistent,
                                      "findings": as_dicts(verdict.findings), "update": verdict.as_json()})
        click.echo(f"verdicts written to {terminal_line(json_path, 200)}")
    click.get_current_context().exit(0 if verdict.consistent else 1)


def _aborted(target: str, exc: TargetAborted, json_path) -> None:
    """The check failed because TARGET hung, ended its process or left processes running: say so (one bounded
    line), record it, exit 1."""
    click.echo(terminal_line(f"{target}: check FAILED: {exc}", MESSAGE_CHARS), err=True)
    if json_path is not None:
        atomic_write_json(json_path, {"target": target, "agrees": False, "aborted": str(exc), "findings": []})
    click.get_current_context().exit(1)


def _check(loaded: TargetProcess, target: str, dev, variants, timing: bool, json_path) -> None:
    if loaded.kind == "variant" and target not in available_variants(dev):
        raise _refused(f"variant {target!r} cannot run on {dev}: it needs {get_variant(target).runs_on}", "TARGET")
    runnable = [v for v in available_variants(dev) if get_variant(v).timed(dev.type)]
    if variants is not None:
        unknown = [v for v in variants if v not in runnable]
        if unknown:
            raise _refused(f"{', '.join(unknown)}: expected variants timed on {dev}: {', '.join(runnable)}",
                           "--variants")
        runnable = list(variants)
    findings = run_suite(loaded)
    timings = [row for classes in TIMING_CLASSES for row in loaded.timing(runnable, classes)] if timing else []
    loaded.finish()
    click.echo(f"ablate check {terminal_line(target, 200)}")
    _print_table(findings)
    if timings:
        click.echo(f"\nmedian ms, forward + backward, B=256 D=128 float32 on {dev}:")
        click.echo(pd.DataFrame(timings).to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    verdict = agrees(findings)
    convention = next((f.verdict for f in findings if f.section == "convention" and f.check == "loss"), "none")
    summary = f"agrees with the reference under {convention}" if verdict else \
        "does not agree with the reference: " + "; ".join(f"{f.check} {f.verdict}" for f in findings
                                                          if f.passed is False and f.section in JUDGED)
    click.echo("\n" + terminal_line(f"{target}: {summary}", MESSAGE_CHARS))
    if json_path is not None:
        atomic_write_json(json_path, {"target": target, "agrees": verdict, "convention": convention,
                                      "findings": as_dicts(findings), "timing": timings})
        click.echo(f"verdicts written to {terminal_line(json_path, 200)}")
    click.get_current_context().exit(0 if verdict else 1)
