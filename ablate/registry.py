"""One registry for every choice the suite names: variants, metrics, datasets, models, rules, conventions, bench
suites and devices.

A `Registry` holds frozen entries, each with a `name`, in the order they were registered. Command-line choices,
CellConfig checks, grids and the report read it, and every "unknown X" error comes from `Registry.get`, so a new
entry reaches all of them. A registry may also take entries from installed packages through an entry-point group
(loaded on the first look-up, once per process; an entry point that fails is left out and kept in
`plugin_errors` with its error). A registry given `from_reference` also takes, wherever it takes a name, a function
outside the package named `pkg.module:factory` or `path/to/file.py:factory` (ablate.factories): `get` builds its entry
then, named by the reference. `lazy("module:attribute")` names a function without importing its module, so that a
registry can be read (names, descriptions) without importing torch.

    VARIANTS = Registry("variant", entry_point_group="ablate.variants", from_entry_point=as_variant)
    VARIANTS.register(Variant("gather", loss=lazy("ablate.loss.gather:gather_center_loss"), ...))
    VARIANTS.get("gather"); VARIANTS.names(); "gather" in VARIANTS
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from importlib.metadata import entry_points
from typing import Any, Generic, Protocol, TypeVar

import click

from ablate.factories import is_reference


class Named(Protocol):
    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=Named)


class Registry(Generic[T]):
    """Entries of one kind by name, in registration order; `kind` names them in errors ("unknown rule 'x'")."""

    def __init__(self, kind: str, *, entry_point_group: str | None = None,
                 from_entry_point: Callable[[str, Any, str], T] | None = None,
                 from_reference: Callable[[str], T] | None = None):
        if (entry_point_group is None) != (from_entry_point is None):
            raise ValueError("an entry-point group needs from_entry_point(name, loaded object, source) -> entry")
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._from_entry_point = from_entry_point
        self._from_reference = from_reference  # reference -> entry (it caches its own), for names outside the package
        self._entries: dict[str, T] = {}
        self._plugins_loaded = entry_point_group is None
        self.plugin_errors: dict[str, str] = {}  # entry-point name -> "ErrorType: message"

    def register(self, entry: T) -> T:
        """Add `entry` (returned, so that it can decorate or assign); a name already taken is a ValueError."""
        name = entry.name
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} needs a non-empty string name, got {name!r}")
        if name in self._entries:
            raise ValueError(f"a {self.kind} named {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> T:
        """Remove and return the entry named `name` (for a plugin or test that registered it)."""
        return self._entries.pop(self.get(name).name)

    @property
    def takes_references(self) -> bool:
        """Whether `get` also takes pkg.module:factory and path/to/file.py:factory."""
        return self._from_reference is not None

    def get(self, name: str) -> T:
        """The entry named `name`, or built from the reference `name` is (where the registry takes references); a
        ValueError naming every registered one otherwise (ablate.factories.FactoryError for a reference that cannot
        be loaded)."""
        self.load_plugins()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            pass
        if self._from_reference is not None and is_reference(name):
            return self._from_reference(name)
        also = ", or pkg.module:factory or path/to/file.py:factory" if self.takes_references else ""
        raise ValueError(f"unknown {self.kind} {name!r}; expected one of {', '.join(self._entries)}{also}")

    def check(self, name: str) -> str:
        """`name` itself when it is registered (the ValueError of `get` otherwise)."""
        return self.get(name).name

    def names(self) -> tuple[str, ...]:
        self.load_plugins()
        return tuple(self._entries)

    def entries(self) -> tuple[T, ...]:
        self.load_plugins()
        return tuple(self._entries.values())

    def __contains__(self, name: object) -> bool:
        self.load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[T]:
        return iter(self.entries())

    def __len__(self) -> int:
        return len(self.names())

    def load_plugins(self) -> None:
        """Register every entry point of the group once per process; a failure goes to `plugin_errors`."""
        if self._plugins_loaded:
            return
        self._plugins_loaded = True  # first: a plugin that reads the registry while it loads must not recurse
        assert self.entry_point_group is not None and self._from_entry_point is not None
        for entry_point in entry_points(group=self.entry_point_group):
            dist = entry_point.dist.name if entry_point.dist else "unknown distribution"
            source = f"{dist}: {entry_point.value}"
            try:
                self.register(self._from_entry_point(entry_point.name, entry_point.load(), source))
            except Exception as exc:  # someone else's code: recorded, never raised
                self.plugin_errors[entry_point.name] = f"{type(exc).__name__}: {exc}".strip()

    def choice(self) -> LazyChoice:
        """A click parameter type whose choices are this registry's names when the command runs (and any reference,
        where the registry takes them)."""
        return LazyChoice(self.names, references=self.takes_references)


class LazyChoice(click.Choice):
    """click.Choice over names read when a value is checked or help is shown (not when the option is declared),
    so that entries registered after the command's module was imported are choices too. references: a value of the
    form pkg.module:factory or path/to/file.py:factory passes too (its registry checks it)."""

    def __init__(self, names: Callable[[], Sequence[str]], *, references: bool = False):
        self.names = names
        self.references = references
        self.case_sensitive = True

    def convert(self, value, param, ctx):
        if self.references and is_reference(value):
            return value
        return super().convert(value, param, ctx)

    def get_metavar(self, param, ctx):
        metavar = super().get_metavar(param, ctx)
        return f"{metavar[:-1]}|MODULE:FACTORY|FILE.py:FACTORY]" if self.references and metavar else metavar

    @property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self.names())


class Lazy:
    """A function named "module:attribute", imported at its first call, so that the entry holding it can be
    imported without what the function needs (torch, Triton, scikit-learn)."""

    def __init__(self, target: str):
        module, _, attribute = target.partition(":")
        if not module or not attribute:
            raise ValueError(f"expected 'module:attribute', got {target!r}")
        self.target = target
        self._function: Callable | None = None

    def resolve(self) -> Callable:
        if self._function is None:
            module, attribute = self.target.split(":")
            self._function = getattr(importlib.import_module(module), attribute)
        return self._function

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"lazy({self.target!r})"


def lazy(target: str) -> Lazy:
    """The function named "module:attribute", imported when first called."""
    return Lazy(target)
