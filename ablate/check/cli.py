"""`ablate check TARGET`: is someone's center loss right, which convention is it, how fast against ours? With
--step: which update rule does their training step apply to the centers?"""

import click
import pandas as pd
import torch

from ablate.check.isolated import DEFAULT_TIMEOUT_S, TargetAborted, TargetProcess
from ablate.check.suite import JUDGED, TIMING_CLASSES, agrees, as_dicts, run_suite
from ablate.check.target import TargetError, parse_init
from ablate.check.update_verdict import judge_update
from ablate.io import atomic_write_json, check_writable
from ablate.loss import available_variants, get_variant
from ablate.loss.devices import DEVICES, device_present


def _variant_list(ctx, param, value):
    return None if value is None else tuple(v.strip() for v in value.split(",") if v.strip())


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
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_TIMEOUT_S, show_default=True,
              help="Seconds one call of TARGET (or one training step) may take (it runs in a process of its own) "
                   "before the check stops.")
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
    some convention (loss, gradients, edge cases in float64), 1 otherwise, and 1 when TARGET hangs past --timeout
    or ends its process. TARGET runs in a child process on copies of the inputs; changing one is a failed call.

    With --step, TARGET is an nn.Module class and the check runs training steps on controlled batches and fits the
    centers' motion against the update rules (paper, sgd, ema): it exits 0 when one rule with one alpha explains
    every step, 1 otherwise (a lambda-dependent alpha, weight decay or momentum on the centers, duplicates applied
    one after another, centers that never move).
    """
    try:
        init_values = parse_init(init)
    except TargetError as exc:
        raise click.BadParameter(str(exc), param_hint="--init") from None
    _check_options(step_spec, centers_attr)
    if json_path is not None:
        try:
            check_writable(json_path)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--json") from None
    if not device_present(device):
        raise click.BadParameter(f"torch sees no {device} device here; use --device cpu", param_hint="--device")
    dev = torch.device(device)
    try:
        loaded = TargetProcess(target, init_values, dev, timeout)
    except TargetError as exc:
        raise click.BadParameter(str(exc), param_hint="TARGET") from None
    except TargetAborted as exc:
        _aborted(target, exc, json_path)
    try:
        if step_spec is None:
            _check(loaded, target, dev, variants, timing, json_path)
        else:
            _check_step(loaded, target, step_spec, centers_attr, json_path)
    finally:
        loaded.close()


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
    table = pd.DataFrame(as_dicts(findings))
    table["passed"] = table["passed"].map({True: "yes", False: "NO"}).fillna("")
    table = table.rename(columns={"passed": "ok"})
    widths = {c: int(table[c].str.len().max()) for c in table.columns}
    text = table.to_string(index=False, justify="left", formatters={c: f"{{:<{w}}}".format for c, w in widths.items()})
    click.echo("\n".join(line.rstrip() for line in text.splitlines()))


def _check_step(loaded: TargetProcess, target: str, step_spec: str, centers_attr, json_path) -> None:
    if loaded.kind != "module":
        raise click.BadParameter(f"--step judges the centers a module owns; {target} is a {loaded.kind}, expected an "
                                 "nn.Module class", param_hint="TARGET")
    try:
        verdict = judge_update(loaded, step_spec, centers_attr)
    except TargetError as exc:
        raise click.BadParameter(str(exc), param_hint="TARGET or --step") from None
    except TargetAborted as exc:
        _aborted(target, exc, json_path)
    click.echo(f"ablate check {target} --step {step_spec}")
    _print_table(verdict.findings)
    click.echo(f"\n{verdict.summary}")
    if json_path is not None:
        atomic_write_json(json_path, {"target": target, "step": step_spec, "agrees": verdict.consistent,
                                      "findings": as_dicts(verdict.findings), "update": verdict.as_json()})
        click.echo(f"verdicts written to {json_path}")
    click.get_current_context().exit(0 if verdict.consistent else 1)


def _aborted(target: str, exc: TargetAborted, json_path) -> None:
    """The check failed because TARGET hung or ended its process: say so, record it, exit 1."""
    click.echo(f"{target}: check FAILED: {exc}", err=True)
    if json_path is not None:
        atomic_write_json(json_path, {"target": target, "agrees": False, "aborted": str(exc), "findings": []})
    click.get_current_context().exit(1)


def _check(loaded: TargetProcess, target: str, dev, variants, timing: bool, json_path) -> None:
    if loaded.kind == "variant" and target not in available_variants(dev):
        raise click.BadParameter(f"variant {target!r} cannot run on {dev}: it needs {get_variant(target).runs_on}",
                                 param_hint="TARGET")
    runnable = [v for v in available_variants(dev) if get_variant(v).timed(dev.type)]
    if variants is not None:
        unknown = [v for v in variants if v not in runnable]
        if unknown:
            raise click.BadParameter(f"{', '.join(unknown)}: expected variants timed on {dev}: {', '.join(runnable)}",
                                     param_hint="--variants")
        runnable = list(variants)
    try:
        findings = run_suite(loaded)
        timings = [row for classes in TIMING_CLASSES for row in loaded.timing(runnable, classes)] if timing else []
    except TargetError as exc:
        raise click.BadParameter(str(exc), param_hint="TARGET") from None
    except TargetAborted as exc:
        _aborted(target, exc, json_path)
    click.echo(f"ablate check {target}")
    _print_table(findings)
    if timings:
        click.echo(f"\nmedian ms, forward + backward, B=256 D=128 float32 on {dev}:")
        click.echo(pd.DataFrame(timings).to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    verdict = agrees(findings)
    convention = next((f.verdict for f in findings if f.section == "convention" and f.check == "loss"), "none")
    click.echo(f"\n{target}: " + (f"agrees with the reference under {convention}" if verdict else
                                   "does not agree with the reference: " + "; ".join(
                                       f"{f.check} {f.verdict}" for f in findings if f.passed is False
                                       and f.section in JUDGED)))
    if json_path is not None:
        atomic_write_json(json_path, {"target": target, "agrees": verdict, "convention": convention,
                                      "findings": as_dicts(findings), "timing": timings})
        click.echo(f"verdicts written to {json_path}")
    click.get_current_context().exit(0 if verdict else 1)
