"""One small registry class; one instance per kind of component.

Registering a name twice is an error (no silent overwrite). Asking for an unknown
name raises :class:`~unnas.errors.UserError` listing the registered names.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Callable, Iterator

from unnas.errors import UserError

# Packages whose modules register components when imported.
_PLUGIN_PACKAGES = ("unnas.data", "unnas.generators", "unnas.objectives", "unnas.pretext", "unnas.moco",
                    "unnas.eval", "unnas.eval.proxies", "unnas.strategies")
_loaded = False


def load_all() -> None:
    """Import every module of the component packages so that all registrations happen."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for pkg_name in _PLUGIN_PACKAGES:
        try:
            pkg = importlib.import_module(pkg_name)
        except ModuleNotFoundError as e:  # a package may be absent in a trimmed install
            if e.name == pkg_name:
                continue
            raise
        for mod in pkgutil.iter_modules(pkg.__path__):
            if not mod.name.startswith("_"):
                importlib.import_module(f"{pkg_name}.{mod.name}")


class Registry:
    """Maps names to components (classes or functions) of one kind."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Any] = {}
        self._meta: dict[str, dict] = {}

    def register(self, name: str | None = None, **meta: Any) -> Callable[[Any], Any]:
        """Decorator: ``@GENERATORS.register("randwire-ws")``. Extra keywords are kept as metadata."""

        def deco(obj: Any) -> Any:
            key = name or getattr(obj, "name", None) or obj.__name__
            if key in self._items:
                raise ValueError(f"{self.kind} {key!r} is already registered (by {self._items[key]!r})")
            self._items[key] = obj
            self._meta[key] = dict(meta)
            return obj

        return deco

    def add(self, name: str, obj: Any, **meta: Any) -> Any:
        return self.register(name, **meta)(obj)

    def get(self, name: str) -> Any:
        load_all()
        if not isinstance(name, str) or name not in self._items:
            raise UserError(self.kind, name, self.names(), message=f"unknown {self.kind} {name!r}")
        return self._items[name]

    def meta(self, name: str) -> dict:
        self.get(name)
        return self._meta[name]

    def build(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self.get(name)(*args, **kwargs)

    def names(self) -> list[str]:
        load_all()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        load_all()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())


DATASETS = Registry("dataset")
GENERATORS = Registry("generator")
OBJECTIVES = Registry("objective")
EVALUATORS = Registry("evaluator")
PROXIES = Registry("proxy")  # zero-cost scores: f(ProxyInput, options) -> float (eval/proxies)
STRATEGIES = Registry("strategy")  # which jobs to run next, from the finished rows (unnas/strategies)
SEARCH_METHODS = Registry("search method")  # supernet searches: DARTS, DMaskingNAS (unnas/search)
# label-free scores of a trained network: f(TrainedInput) -> float, metadata ``orient`` maps the value
# to "higher is better" (eval/trained.py)
TRAINED_SCORES = Registry("trained score")
