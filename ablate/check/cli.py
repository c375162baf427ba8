"""`ablate check TARGET`: is someone's center loss right, which convention is it, how fast against ours?"""

import click
import pandas as pd
import torch

from ablate.check.suite import JUDGED, agrees, as_dicts, run_suite, timing_rows
from ablate.check.target import TargetError, load_target, parse_init
from ablate.io import atomic_write_json
from ablate.loss import available_variants, get_variant


def _variant_list(ctx, param, value):
    return None if value is None else tuple(v.strip() for v in value.split(",") if v.strip())


@click.command("check")
@click.argument("target")
@click.option("--init", "init", multiple=True, metavar="KEY=VALUE",
              help="A constructor argument of an nn.Module TARGET (repeatable), e.g. --init use_gpu=False.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the verdicts to this JSON file.")
@click.option("--timing/--no-timing", default=True, show_default=True,
              help="Time TARGET against the built-in variants at C = 10, 1000, 10000.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="Where TARGET runs, for the checks and the timing (the reference runs in float64 on the CPU).")
@click.option("--variants", callback=_variant_list,
              help="Comma list of built-in variants to time against (default: all timed on DEVICE).")
def check_command(target, init, json_path, timing, device, variants):
    """Check TARGET against the float64 reference and print a verdict table.

    TARGET is pkg.mod:attr or path/to/file.py:attr naming a function (features, labels, centers) -> loss or an
    nn.Module class built as Cls(num_classes=C, feat_dim=D) whose forward is (features, labels) and which owns one
    (C, D) tensor of centers; or the name of a registered variant. Exits 0 when it agrees with the reference under
    some convention (loss, gradients, edge cases in float64), 1 otherwise.
    """
    try:
        loaded = load_target(target, parse_init(init))
    except TargetError as exc:
        raise click.BadParameter(str(exc), param_hint="TARGET") from None
    dev = loaded.device = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise click.BadParameter("torch sees no CUDA device; use --device cpu", param_hint="--device")
    if loaded.kind == "variant" and target not in available_variants(dev):
        raise click.BadParameter(f"variant {target!r} cannot run on {dev}: it needs {get_variant(target).runs_on}",
                                 param_hint="TARGET")
    runnable = [v for v in available_variants(dev) if get_variant(v).timed(dev)]
    if variants is not None:
        unknown = [v for v in variants if v not in runnable]
        if unknown:
            raise click.BadParameter(f"{', '.join(unknown)}: expected variants timed on {dev}: {', '.join(runnable)}",
                                     param_hint="--variants")
        runnable = list(variants)
    try:
        findings = run_suite(loaded)
        timings = timing_rows(loaded, runnable, dev) if timing else []
    except TargetError as exc:
        raise click.BadParameter(str(exc), param_hint="TARGET") from None
    table = pd.DataFrame(as_dicts(findings))
    table["passed"] = table["passed"].map({True: "yes", False: "NO"}).fillna("")
    table = table.rename(columns={"passed": "ok"})
    click.echo(f"ablate check {target}")
    widths = {c: int(table[c].str.len().max()) for c in table.columns}
    text = table.to_string(index=False, justify="left", formatters={c: f"{{:<{w}}}".format for c, w in widths.items()})
    click.echo("\n".join(line.rstrip() for line in text.splitlines()))
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
