"""What a tune searches: the objectives of a grid and the search space of each, read from the registries.

    searchable_options()          the cell options with a declared search range (ablate.train.config: lr, lambda,
                                  alpha; each declared with `search=`)
    parameter_range(parameter)    a head's or pair loss's parameter (ablate.objectives): its declared search range,
                                  else its valid range where that is finite and closed; None: not searched
    plan_objectives(spec, settings)   the grid's objectives, each with the options it fixes and the ranges searched

An objective is a row of the grid with the searched keys (and seed) taken out: rows that differ only in a searched
key are one objective. A searched option whose value in a row lies outside its search range is a setting of its
own and stays fixed (lambda 0: no center loss, so alpha, which only moves the centers of a loss with weight above 0,
is not searched there either). A new option declared with a search range, or a new parameter of a head, joins the
search with no edit here.
"""

import json
from dataclasses import dataclass, fields

from ablate.grid.spec import GridSpec, expand
from ablate.limits import SearchRange
from ablate.loss.rules import RULES
from ablate.objectives import HEADS, PAIR_LOSSES, Parameter
from ablate.runs.configs import describe
from ablate.runs.schema import SEED_KEYS, cell_id
from ablate.train.config import CellConfig, key_name
from ablate.tune.settings import TuneSettings


@dataclass(frozen=True)
class SearchableOption:
    """A cell option with a declared search range; needs: the option (record key) that must be non-zero in a row for
    this one to be searched there."""

    key: str
    range: SearchRange
    needs: str | None


def searchable_options() -> list:
    """The cell options declared with a search range, in CellConfig's field order."""
    return [SearchableOption(key_name(f.name), f.metadata["search"],
                             key_name(f.metadata["searched_with"]) if f.metadata["searched_with"] else None)
            for f in fields(CellConfig) if f.metadata.get("search") is not None]


def parameter_range(parameter: Parameter) -> SearchRange | None:
    """The range a parameter of a head or pair loss is searched over: its declared search range, else its valid
    range where that is finite and closed; None (held at the cell's value) otherwise."""
    declared = getattr(parameter, "search", None)
    if declared is not None:
        return declared
    finite = abs(parameter.low) != float("inf") and abs(parameter.high) != float("inf")
    if not finite or parameter.low_open or parameter.low >= parameter.high:
        return None
    return SearchRange(parameter.low, parameter.high, parameter.integer)


@dataclass(frozen=True)
class Objective:
    """One objective of a tune: fixed, the cell options its trials share (record keys; seeds left out); space, each
    searched key's range; label, the objective in words; study, the name of its study (from its fixed options, so
    that the same row of a changed grid resumes its own study)."""

    fixed: dict
    space: dict
    label: str

    @property
    def study(self) -> str:
        return "objective-" + cell_id(self.fixed)


def _row_space(config: dict, narrowed: dict, where: str) -> dict:
    """The search space of the row of `config` (a resolved cell config, record keys): key -> SearchRange; where:
    what names the [tune] table in an error."""
    space = {}
    for option in searchable_options():
        if option.needs is not None and not config.get(option.needs):
            continue
        if config[option.key] in option.range:  # else a setting of its own (lambda 0), kept fixed
            space[option.key] = option.range
    rule = RULES.get(config["rule"])
    if "alpha" in space:  # below the rule's own bound at this batch (Rule.max_stable_alpha)
        high = min(space["alpha"].high, rule.max_stable_alpha(config["convention"],
                                                              config["batch_size"] * config["nproc"]))
        space["alpha"] = SearchRange(min(space["alpha"].low, high / 100), high)
    for entry in (HEADS[config["head"]], PAIR_LOSSES[config["pair_loss"]]):
        for parameter in entry.parameters:
            if (declared := parameter_range(parameter)) is not None:
                space[parameter.key] = declared
    for key, value in narrowed.items():
        if key in space:
            space[key] = None if value is False else space[key].narrowed(f"{where} space.{key}", *value)
    return {key: value for key, value in space.items() if value is not None}


def searchable_keys() -> list:
    """Every key a tune can search: the searchable options and every parameter of a head or pair loss."""
    keys = [option.key for option in searchable_options()]
    for entry in (*HEADS.values(), *PAIR_LOSSES.values()):
        keys += [p.key for p in entry.parameters if p.key not in keys and parameter_range(p) is not None]
    return keys


def plan_objectives(spec: GridSpec, settings: TuneSettings) -> list:
    """The objectives of `spec` in order of first appearance (ValueError for a bad option, a [tune.space] key that
    is not searchable, or a narrowed range outside a declared one, naming it)."""
    unknown = [key for key in settings.space if key not in searchable_keys()]
    if unknown:
        raise ValueError(f"grid {spec.source}: [tune] space names {', '.join(map(repr, unknown))}, not searched by "
                         f"a tune; searchable: {', '.join(searchable_keys())}")
    rows: dict = {}
    for config in expand(spec):
        space = _row_space(config, settings.space, f"grid {spec.source}: [tune]")
        fixed = {k: v for k, v in config.items() if k not in space and k not in SEED_KEYS}  # the tune's own seeds
        key = json.dumps(fixed, sort_keys=True)
        if key not in rows:
            rows[key] = (fixed, space)
    varying = [k for k in next(iter(rows.values()))[0] if len({repr(f.get(k)) for f, _ in rows.values()}) > 1]
    return [Objective(fixed, space, _label(fixed, space, varying)) for fixed, space in rows.values()]


def _label(fixed: dict, space: dict, varying: list) -> str:
    """'head=arcface, feat_dim=64; searched: lr, lambda, alpha, margin, scale': the keys that tell the objectives
    apart and that it fixes (unset ones left out), then what it searches."""
    setting = describe({k: fixed[k] for k in varying if k in fixed})
    return "; ".join(filter(None, [setting, f"searched: {', '.join(space) or 'nothing'}"]))
