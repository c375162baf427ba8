"""Functions named by a reference outside the package: `pkg.module:attribute` or `path/to/file.py:attribute`.

    is_reference(text)                       whether `text` has that form (registered names never hold a ':')
    import_location(location)                the module at pkg.module or path/to/file.py (a file imported once per
                                             content: an edited file is imported afresh)
    load_factory(reference, kind)            a Factory: the function, the file it came from and that file's digest
    factory_of(obj, reference, kind)         a Factory of an object an entry point loaded
    call_with(factory, **available)          the function called with the keywords its signature names
    declared_recipe(factory, allowed)        the options the function declares as its recipe (its `recipe` attribute)

The digest (sha256 of the defining file's bytes, 12 hex digits) enters a cell's id, so that an edited model or
dataset re-runs its cells. Every failure is a FactoryError (a ValueError) naming the reference, its file and what was
expected; nothing a factory raises escapes as its own type.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.io import UnreadableFile, read_regular_bytes

DIGEST_LENGTH = 12  # hex digits of sha256, as a cell id
MAX_SOURCE_BYTES = 16 * 2**20  # a module's source file: far above any model or dataset definition
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_ATTRIBUTE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class FactoryError(ValueError):
    """A reference that cannot be loaded or called, or a factory whose result is not what was expected."""


def is_reference(text: object) -> bool:
    """Whether `text` is `pkg.module:attribute` or `path/to/file.py:attribute`."""
    if not isinstance(text, str):
        return False
    location, sep, attribute = text.rpartition(":")
    return bool(sep) and _ATTRIBUTE.fullmatch(attribute) is not None and (
        location.endswith(".py") or _MODULE.fullmatch(location) is not None)


def file_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:DIGEST_LENGTH]


def _source_bytes(path: Path, what: str) -> bytes:
    try:
        return read_regular_bytes(path, MAX_SOURCE_BYTES)
    except UnreadableFile as exc:
        raise FactoryError(f"{what}: {exc}") from None


def import_location(location: str):
    """The module at `location`: path/to/file.py (imported under a name of its own per path and content, so that an
    edited file is imported afresh and a second reference to the same file shares its module) or pkg.module. A missing
    file is a FactoryError; whatever the module raises while it is imported propagates."""
    if not location.endswith(".py"):
        return importlib.import_module(location)
    path = Path(location)
    if not path.is_file():
        raise FactoryError(f"no such file {location!r}; expected path/to/file.py:attribute or pkg.module:attribute")
    digest = file_digest(_source_bytes(path, location))
    where = file_digest(str(path.resolve()).encode("utf-8", "surrogateescape"))  # two copies of one file: two modules
    name = f"ablate_file_{re.sub(r'[^A-Za-z0-9_]', '_', path.stem)}_{where}_{digest}"
    loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise FactoryError(f"{location!r} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses, pickling and DataLoader workers look their module up here
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


@dataclass(frozen=True)
class Factory:
    """A function named by `reference`, defined in `path` (absolute) whose bytes hash to `digest`; `origin` says
    how it was named: "file", "module" or "entry point" (then `distribution` names the installed package)."""

    reference: str
    function: Callable
    path: str
    digest: str
    origin: str
    distribution: str | None = None

    def describe(self) -> str:
        """'tests/x.py:build (/abs/tests/x.py, sha256 1a2b3c4d5e6f)', as errors and provenance name it."""
        where = f"{self.distribution}, " if self.distribution else ""
        return f"{self.reference} ({where}{self.path}, sha256 {self.digest})"


def _defining_file(obj: Any, reference: str, kind: str) -> Path:
    module = sys.modules.get(getattr(obj, "__module__", None) or "")
    path = getattr(module, "__file__", None)
    if not path:
        raise FactoryError(f"{kind} factory {reference}: the module defining it has no source file to hash (an "
                           "edited factory must re-run its cells); define it in a .py file")
    return Path(path).resolve()


def factory_of(obj: Any, reference: str, kind: str, origin: str, distribution: str | None = None) -> Factory:
    """The Factory of `obj` (a callable) named by `reference`; its digest is that of the file defining it."""
    if not callable(obj):
        raise FactoryError(f"{kind} factory {reference} must be a function (or a class), got {type(obj).__name__}")
    path = _defining_file(obj, reference, kind)
    return Factory(reference, obj, str(path), file_digest(_source_bytes(path, reference)), origin, distribution)


def load_factory(reference: str, kind: str) -> Factory:
    """The function `reference` names (pkg.module:attribute or path/to/file.py:attribute), imported; `kind` ("model",
    "dataset") names it in errors. Anything the import raises becomes a FactoryError naming the reference."""
    if not is_reference(reference):
        raise FactoryError(f"{kind} {reference!r}: expected a registered name, pkg.module:factory or "
                           "path/to/file.py:factory")
    location, _, attribute = reference.rpartition(":")
    try:
        module = import_location(location)
    except FactoryError as exc:
        raise FactoryError(f"{kind} factory {reference}: {exc}") from None
    except BaseException as exc:  # someone else's code at import: named, never a traceback
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise FactoryError(f"{kind} factory {reference}: importing {location} failed: "
                           f"{type(exc).__name__}: {exc}") from None
    if not hasattr(module, attribute):
        raise FactoryError(f"{kind} factory {reference}: {location} has no attribute {attribute!r}")
    origin = "file" if location.endswith(".py") else "module"
    return factory_of(getattr(module, attribute), reference, kind, origin)


def _parameters(factory: Factory) -> Mapping[str, inspect.Parameter] | None:
    """The factory's parameters (None where it has no signature to read, a builtin: it is given everything)."""
    try:
        return inspect.signature(factory.function).parameters
    except (TypeError, ValueError):
        return None


def taken(factory: Factory, names: tuple[str, ...]) -> tuple[str, ...]:
    """Those of `names` call_with gives the factory: the keywords its signature names (all of them for **kwargs)."""
    parameters = _parameters(factory)
    if parameters is None or any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return names
    return tuple(name for name in names if name in parameters)


def call_with(factory: Factory, kind: str, **available: Any) -> Any:
    """factory.function called with those of `available` its signature names (taken); a parameter without a default
    that is not available, or an exception it raises, is a FactoryError."""
    parameters = _parameters(factory) or {}
    missing = [name for name, p in parameters.items() if p.default is p.empty and name not in available
               and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if missing:
        raise FactoryError(f"{kind} factory {factory.describe()} takes {', '.join(missing)}, which ablate does not "
                           f"give; it gives, by keyword, {', '.join(available)}")
    arguments = {name: available[name] for name in taken(factory, tuple(available))}
    try:
        return factory.function(**arguments)
    except Exception as exc:
        raise FactoryError(f"{kind} factory {factory.describe()} raised {type(exc).__name__}: {exc}") from None


def declared_recipe(factory: Factory, kind: str, allowed: tuple[str, ...]) -> dict:
    """The options a factory declares as its recipe, `function.recipe = {"epochs": 5, ...}`, keys among `allowed`
    ({} when it declares none)."""
    recipe = getattr(factory.function, "recipe", None)
    if recipe is None:
        return {}
    if not isinstance(recipe, Mapping):
        raise FactoryError(f"{kind} factory {factory.describe()}: its recipe must be a dict of options, got "
                           f"{type(recipe).__name__}")
    unknown = [key for key in recipe if key not in allowed]
    if unknown:
        raise FactoryError(f"{kind} factory {factory.describe()}: its recipe names {', '.join(map(str, unknown))}; a "
                           f"{kind} recipe may set {', '.join(allowed)}")
    return dict(recipe)
