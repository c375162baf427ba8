"""Grid specs: a TOML file (or a bundled grid by name), `--set` overrides, expansion into cell configs.

A spec has an optional `description`, an optional `save_weights` (true: each finished cell keeps its model, head
and centers, cells/<id>.safetensors), an `[axes]` table and any number of `[[also]]` tables:

    description = "lambda x seed on digits"
    save_weights = true
    [axes]                    # one cartesian product; a scalar is an axis of one value
    lambda = [0, 0.01, 0.1]
    seed = [0, 1, 2]
    [[also]]                  # another product: [axes] with these keys replaced
    variant = ["naive", "gather"]
    lambda = [0.1]

An optional `effect_of_interest` declares the smallest change that matters to the findings (default: 1 point for
every metric said in points): a number of points, or a table of metric = value (a factor for a ratio); a finding
whose minimum detectable effect exceeds it is said to be underpowered (ablate.analysis.stats).
An optional `[tune]` table says how `ablate tune` searches the grid's objectives (ablate.tune.settings); `ablate
grid` ignores it.

The grid is the union of the products, without duplicates. Keys are the cell options of
`ablate train` with underscores (`lambda`, `alpha`, `feat_dim`, ...); options not named keep their
defaults. `variant = "*"` stands for every registered variant available on the cell's device here (`ablate
variants --device ...` lists them), so that a new variant joins a grid with no edit of it.
"""

import itertools
import math
import tomllib
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from ablate.analysis.stats import EFFECT_OF_INTEREST, effects_of_interest
from ablate.escape import toml_comment, toml_key, toml_string, toml_value
from ablate.io import UnreadableFile, parse_toml_text, read_regular_text
from ablate.loss.registry import DEFAULT_VARIANT, VARIANTS, available_variants
from ablate.messages import listed
from ablate.runs.columns import shown
from ablate.train import CellConfig
from ablate.train.cell import resolve_device
from ablate.train.config import normalized_option

SPEC_KEYS = ("description", "save_weights", "axes", "also", EFFECT_OF_INTEREST, "tune")
SCALAR_TYPES = (bool, int, float, str)
MAX_CELLS = 100_000  # default of --max-cells: far above any grid this suite trains, far below what fills memory
EVERY_VARIANT = "*"  # the value of `variant` that stands for every variant available on the cell's device
# Where a --set lands (--set-scope): every product ([axes] and each [[also]]: the default), or [axes] alone.
ALL_PRODUCTS, MAIN_PRODUCT = "all", "main"
SET_SCOPES = (ALL_PRODUCTS, MAIN_PRODUCT)


def _axis_length(key: str, values: list) -> int:
    """The values an axis stands for: "*" of `variant` counts as every registered variant (an upper bound, as
    the device's are known only per cell)."""
    if key == "variant" and EVERY_VARIANT in values:
        return len(values) - 1 + len(VARIANTS)
    return len(values)


@dataclass(frozen=True)
class GridSpec:
    """axes: key -> list of values; also: extra products, each key -> list of values replacing axes'; save_weights:
    each finished cell keeps its weights; effect of interest: as the grid declares it (a number of points, a table of
    metric = value), None for the default; tune: the [tune] table as written (checked by ablate.tune.settings);
    overrides, set_scope: the --set options that made it (for grid.toml's header)."""

    axes: dict
    also: tuple = ()
    description: str = ""
    source: str = ""
    overrides: tuple = ()
    save_weights: bool = False
    effect_of_interest: float | dict | None = None
    set_scope: str = ALL_PRODUCTS
    tune: dict = field(default_factory=dict)

    def products(self) -> list:
        """The products of the grid, each a dict key -> list of values."""
        return [self.axes] + [{**self.axes, **extra} for extra in self.also]

    def product_sizes(self) -> list:
        """The cells of each product before duplicates are dropped: the product of its axis lengths. Computed from
        the lengths alone, so that a grid too large to expand is measured without expanding it."""
        return [math.prod(_axis_length(key, values) for key, values in product.items()) for product in self.products()]

    def cell_count(self) -> int:
        """Cells before duplicates are dropped: the sum of the products' sizes."""
        return sum(self.product_sizes())

    def product_texts(self) -> list:
        """'lambda 5 x alpha 3 x seed 3' for each product: its axes of more than one value ('1' for none; the first
        few, then how many more)."""
        return [listed((f"{k} {_axis_length(k, v)}" for k, v in p.items() if _axis_length(k, v) > 1),
                       separator=" x ") or "1" for p in self.products()]

    def size_text(self) -> str:
        """'lambda 5 x alpha 3 x seed 3' per product, ' + ' between products (the first few, then how many more)."""
        return listed(self.product_texts(), separator=" + ")

    def with_overrides(self, overrides: dict, scope: str = ALL_PRODUCTS) -> "GridSpec":
        """The spec with each key of `overrides` (key -> list of values) set in [axes] and, with scope "all", in
        every [[also]] too (where a table names the key, its values are replaced; the others take it from [axes]).
        With scope "main" the [[also]] tables keep what they had: a table that named the key keeps its values, one
        that took it from [axes] keeps [axes]' old values; a key [axes] did not name is refused (the [[also]] tables
        would have no value to keep but their defaults, which a grid file cannot write)."""
        if scope not in SET_SCOPES:
            raise ValueError(f"unknown --set scope {scope!r}; expected one of {', '.join(SET_SCOPES)}")
        overrides = {key: _normalized(key, values, "--set") for key, values in overrides.items()}
        axes = {**self.axes, **overrides}
        if scope == ALL_PRODUCTS:
            also = tuple({k: overrides.get(k, v) for k, v in extra.items()} for extra in self.also)
        else:
            unnamed = [k for k in overrides if k not in self.axes]
            if unnamed and self.also:
                raise ValueError(f"--set-scope {MAIN_PRODUCT}: {', '.join(unnamed)} is not an axis of the grid's "
                                 "[axes], so its [[also]] tables have no value of it to keep; set it in every product "
                                 f"(--set-scope {ALL_PRODUCTS}) or name it in the grid's [axes]")
            also = tuple({**{k: self.axes[k] for k in overrides if k not in extra}, **extra} for extra in self.also)
        labels = tuple(f"{k}={','.join(map(str, v))}" for k, v in overrides.items())
        return replace(self, axes=axes, also=also, overrides=self.overrides + labels,
                       set_scope=scope if overrides else self.set_scope)

    def reach(self, key: str) -> list:
        """Where a --set of `key` lands with scope "all": '[axes]', then for each [[also]] table (numbered from 1)
        'replaces <values> in [[also]] n' or 'reaches [[also]] n through [axes]'."""
        where = ["[axes]"]
        for n, extra in enumerate(self.also, 1):
            if key in extra:
                where.append(f"replaces {key}={','.join(map(str, extra[key]))} in [[also]] {n}")
            else:
                where.append(f"reaches [[also]] {n} through [axes]")
        return where

    def to_toml(self) -> str:
        """The resolved spec as TOML, loadable again by `load_spec`; where it came from in a header comment."""
        header = f"resolved grid from {self.source or 'the command line'}"
        if self.overrides:
            header += f" with --set {' --set '.join(self.overrides)}"
            if self.set_scope != ALL_PRODUCTS:
                header += f" --set-scope {self.set_scope}"
        lines = [*toml_comment(header), f"description = {toml_string(self.description)}",
                 *([f"save_weights = {toml_value(True)}"] if self.save_weights else [])]
        if isinstance(self.effect_of_interest, (int, float)):
            lines.append(f"{EFFECT_OF_INTEREST} = {toml_value(self.effect_of_interest)}")
        lines += ["", "[axes]", *_toml_lines(self.axes)]
        for extra in self.also:
            lines += ["", "[[also]]", *_toml_lines(extra)]
        if isinstance(self.effect_of_interest, dict):
            lines += ["", f"[{EFFECT_OF_INTEREST}]",
                      *(f"{toml_key(k)} = {toml_value(v)}" for k, v in self.effect_of_interest.items())]
        return "\n".join(lines) + "\n"


def _toml_lines(axes: dict) -> list:
    """key = value lines; an axis of one value as a scalar (written by ablate.escape: the GPU machines have no
    TOML writer installed)."""
    return [f"{toml_key(key)} = {toml_value(values[0] if len(values) == 1 else values)}"
            for key, values in axes.items()]


def bundled_grids() -> dict:
    """Bundled grid name -> its description, from ablate/grids/*.toml."""
    folder = resources.files("ablate") / "grids"
    names = sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))
    return {name: _parse((folder / f"{name}.toml").read_text(), name).description for name in names}


def load_spec(name_or_path) -> GridSpec:
    """A bundled grid by name, or a TOML file by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.exists():
            raise ValueError(f"grid file {path} does not exist")
        try:
            text = read_regular_text(path)
        except UnreadableFile as exc:
            raise ValueError(f"grid file {exc}") from None
        return _parse(text, str(path))
    bundled = resources.files("ablate") / "grids" / f"{name_or_path}.toml"
    if not bundled.is_file():
        raise ValueError(f"unknown grid {name_or_path!r}: not a file, and not a bundled grid "
                         f"(expected one of {', '.join(bundled_grids())}, or a path to a .toml file)")
    return _parse(bundled.read_text(), str(name_or_path))


def _parse(text: str, source: str) -> GridSpec:
    try:
        document = parse_toml_text(text, f"grid {source}")
    except UnreadableFile as exc:
        raise ValueError(str(exc)) from None
    unknown = set(document) - set(SPEC_KEYS)
    if unknown:
        raise ValueError(f"grid {source}: unknown top-level key(s) {listed(sorted(map(shown, unknown)))}; "
                         f"expected {', '.join(SPEC_KEYS)}")
    if not isinstance(document.get("axes"), dict):
        raise ValueError(f"grid {source}: expected an [axes] table of cell options")
    also = document.get("also", [])
    if not isinstance(also, list) or not all(isinstance(t, dict) for t in also):
        raise ValueError(f"grid {source}: expected [[also]] to be tables of cell options")
    save_weights = document.get("save_weights", False)
    if not isinstance(save_weights, bool):
        raise ValueError(f"grid {source}: save_weights must be true or false, got {shown(save_weights)}")
    effect = document.get(EFFECT_OF_INTEREST)
    effects_of_interest(effect, f"grid {source}")  # a ValueError names the key and what it expects
    tune = document.get("tune", {})
    if not isinstance(tune, dict):
        raise ValueError(f"grid {source}: expected [tune] to be a table (budget, metric, seeds, space, ...)")
    return GridSpec(axes=_axes(document["axes"], source), also=tuple(_axes(t, source) for t in also),
                    description=str(document.get("description", "")), source=source, save_weights=save_weights,
                    effect_of_interest=effect, tune=tune)


def _axes(table: dict, source: str) -> dict:
    """key -> non-empty list of scalars, each as a cell records it (ablate.train.config.normalized_option); a scalar
    becomes a list of one."""
    axes = {}
    for key, values in table.items():
        values = values if isinstance(values, list) else [values]
        if not values or not all(isinstance(v, SCALAR_TYPES) for v in values):
            raise ValueError(f"grid {source}: {key} must be a value or a non-empty list of numbers, "
                             f"strings or booleans, got {shown(values)}")
        axes[key] = _normalized(key, values, source)
    return axes


def _normalized(key: str, values: list, source: str) -> list:
    try:
        return [normalized_option(key, value) for value in values]
    except ValueError as exc:
        raise ValueError(f"grid {source}: {exc}") from None


def parse_set_option(text: str) -> tuple:
    """'KEY=V1,V2,...' -> (key, [values]); each value is read as a TOML scalar, else kept as a string."""
    key, sep, values = text.partition("=")
    key = key.strip()
    tokens = [v.strip() for v in values.split(",")]
    if not sep or not key or not all(tokens):
        raise ValueError(f"expected KEY=V1,V2,... (e.g. lambda=0,0.01,0.1), got {text!r}")
    return key, [_scalar(token) for token in tokens]


def _scalar(token: str):
    try:
        value = tomllib.loads(f"v = {token}")["v"]
    except tomllib.TOMLDecodeError:
        return token
    return value if isinstance(value, SCALAR_TYPES) else token


def expand(spec: GridSpec, max_cells: int = MAX_CELLS) -> list:
    """The grid's cells as resolved configs (every option, defaults filled, "lambda" key), in spec order.

    Raises ValueError naming the option and the valid choices for an unknown key or a bad value, and,
    before expanding anything, for a grid of more than max_cells cells.
    """
    count = spec.cell_count()
    if count > max_cells:
        raise ValueError(f"grid {spec.source or '(command line)'} has {count:,} cells ({spec.size_text()}), over the "
                         f"limit of {max_cells:,}: narrow its axes, or raise the limit with --max-cells")
    configs, seen = [], set()
    for product in spec.products():
        keys = list(product)
        for values in itertools.product(*(product[k] for k in keys)):
            for options in _each_variant(dict(zip(keys, values))):
                config = CellConfig.from_dict(options).to_dict()
                frozen = tuple(config.items())
                if frozen not in seen:
                    seen.add(frozen)
                    configs.append(config)
    return configs


def _each_variant(options: dict) -> list:
    """The cell's options, or, for variant "*", one copy per variant available on its device here (registry
    order)."""
    if options.get("variant") != EVERY_VARIANT:
        return [options]
    device = CellConfig.from_dict({**options, "variant": DEFAULT_VARIANT}).device  # the other options checked
    return [{**options, "variant": name} for name in available_variants(resolve_device(device))]
