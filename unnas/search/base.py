"""The supernet contract, the search-method interface and the search result.

* A :class:`Supernet` is a :class:`~unnas.spec.Backbone` (so any objective can wrap it) whose
  architecture parameters are ``alphas``: one tensor per group of decisions (rows = decisions,
  columns = choices). Its choice modules read the mixing weights of the current forward pass
  from a shared :class:`ArchContext`. :meth:`Supernet.derive` returns the discrete network as an
  :class:`~unnas.spec.ArchSpec` of the space's own generator.
* A :class:`SearchMethod` (registered in :data:`unnas.registry.SEARCH_METHODS` with its options
  dataclass, ``SEARCH_METHODS.register(name, config=Options)``) builds supernets for the generators
  it supports and defines the architecture step; :func:`unnas.search.loop.run_supernet_search` is
  the one loop that alternates architecture and weight steps for every method.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping

import torch
from torch import nn
from torch.func import functional_call

from unnas.errors import UserError
from unnas.spec import ArchSpec, Backbone


class ArchContext:
    """The mixing weights of the forward pass in progress, read by a supernet's choice modules.

    A plain object, not a module: a deep copy of a supernet (MoCo's key encoder) gets its own."""

    def __init__(self) -> None:
        self.weights: dict[str, torch.Tensor] | None = None

    def __getitem__(self, group: str) -> torch.Tensor:
        if self.weights is None:
            raise RuntimeError("a choice module ran outside its supernet's forward pass")
        return self.weights[group]


class Supernet(Backbone):
    """Base class: subclasses fill ``alphas`` and define :meth:`body` and :meth:`derive`."""

    def __init__(self, generator: str, params: Mapping[str, Any]):
        super().__init__()
        self.generator = generator
        self.base_params = dict(params)
        self.ctx = ArchContext()
        self.alphas = nn.ParameterDict()

    # ---- parameters
    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.alphas.values())

    def add_alphas(self, group: str, rows: int, cols: int, generator: torch.Generator) -> None:
        """Architecture parameters of one group, initialised ``1e-3 * randn`` (DARTS)."""
        self.alphas[group] = nn.Parameter(1e-3 * torch.randn(rows, cols, generator=generator))

    # ---- mixing weights
    def mixing_weights(self) -> dict[str, torch.Tensor]:
        """The weights the choice modules use in this forward pass: softmax over each row."""
        return {k: torch.softmax(a, dim=-1) for k, a in self.alphas.items()}

    @torch.no_grad()
    def probabilities(self) -> dict[str, list[list[float]]]:
        """``softmax(alpha)`` of every group, as lists (the per-epoch history)."""
        return {k: torch.softmax(a.float(), dim=-1).tolist() for k, a in self.alphas.items()}

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self.ctx.weights = self.mixing_weights()
        try:
            return self.body(x)
        finally:
            self.ctx.weights = None

    def body(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise TypeError(f"{type(self).__name__} does not define body")

    def derive(self) -> ArchSpec:  # pragma: no cover - abstract
        raise TypeError(f"{type(self).__name__} does not define derive")


def supernets_in(module: nn.Module) -> list[Supernet]:
    """Every supernet inside an objective (the query backbone, and MoCo's key-encoder copy)."""
    return [m for m in module.modules() if isinstance(m, Supernet)]


Forward = Callable[[dict[str, torch.Tensor] | None, torch.Generator | None], dict]


@dataclass
class ArchStep:
    """One architecture step's inputs. ``arch_forward(weights, generator)`` runs the objective on
    the architecture batch, ``weight_forward`` on the weights' batch; ``weights`` (parameter name ->
    tensor) replaces the weights for that pass (None: the module's own)."""

    objective: nn.Module
    arch_params: list[nn.Parameter]
    weight_names: list[str]
    weight_params: list[nn.Parameter]
    optimizer: torch.optim.Optimizer  # the weights' SGD (momentum buffers, lr, weight decay)
    arch_forward: Forward
    weight_forward: Forward
    arch_loss: Callable[[dict], torch.Tensor]
    generator: torch.Generator


def grads_of(loss: torch.Tensor, params: list[torch.Tensor]) -> list[torch.Tensor]:
    gs = torch.autograd.grad(loss, params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, gs)]


def first_order(step: ArchStep) -> tuple[dict, list[torch.Tensor]]:
    out = step.arch_forward(None, step.generator)
    loss = step.arch_loss(out)
    return {**out, "search_loss": loss}, grads_of(loss, step.arch_params)


def run_with(objective: nn.Module, weights: dict[str, torch.Tensor] | None, *args) -> dict:
    """``objective(*args)``, with some parameters replaced by ``weights`` (no copy of the module)."""
    if not weights:
        return objective(*args)
    return functional_call(objective, weights, args, strict=False)


Builder = Callable[[Mapping[str, Any], int, Any, torch.Generator], Supernet]


class SearchMethod:
    """A supernet search. Subclasses set ``name`` and ``spaces`` (generator name -> builder
    ``(resolved generator params, in_channels, options, generator) -> Supernet``) and may override
    the hooks; ``options`` is the method's registered options dataclass."""

    name: str = ""
    spaces: Mapping[str, Builder] = {}

    def __init__(self, options: Any):
        self.options = options

    def check(self) -> None:
        """Raise :class:`UserError` for options that cannot work (before anything runs)."""

    def build(self, generator: str, params: Mapping[str, Any], in_channels: int, seed: int) -> Supernet:
        if generator not in self.spaces:
            raise UserError("--generator", generator, sorted(self.spaces),
                            message=f"{self.name} has no supernet for generator {generator!r}")
        from unnas.spec import get_generator

        resolved = get_generator(generator).resolve(params)
        return self.spaces[generator](resolved, in_channels, self.options, torch.Generator().manual_seed(int(seed)))

    def epoch_start(self, objective: nn.Module, epoch: int) -> dict[str, float]:
        """Called before every epoch; returns numbers for that epoch's history (e.g. a temperature)."""
        return {}

    def before_forward(self, objective: nn.Module, generator: torch.Generator) -> None:
        """Called before every forward pass of the search (e.g. to draw Gumbel noise)."""

    def arch_gradients(self, step: ArchStep) -> tuple[dict, list[torch.Tensor]]:
        """``(objective output plus ``search_loss``, the loss the step minimises; gradients of the
        architecture parameters)``; the default is the first-order gradient at the current weights."""
        return first_order(step)

    def arch_loss(self, supernet: Supernet, loss: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """The loss the architecture step minimises, from the objective's loss (default: unchanged)."""
        return loss

    def epoch_end(self, supernet: Supernet, image_size: tuple[int, int]) -> dict[str, float]:
        """Numbers for the history at the end of an epoch (e.g. expected FLOPs)."""
        return {}


@dataclass(frozen=True)
class ArchOptimizer:
    """Adam on the architecture parameters, and which share of the training images it sees."""

    arch_lr: float = 3e-4
    arch_betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    arch_weight_decay: float = 1e-3
    arch_fraction: float = 0.5  # share of the training split that trains the architecture
    warmup_epochs: int = 0  # epochs that train the weights only (architecture frozen)


def check_arch_optimizer(method: str, o: ArchOptimizer) -> None:
    checks = [("arch_lr", o.arch_lr, o.arch_lr > 0, "a positive number"),
              ("arch_betas", list(o.arch_betas), len(o.arch_betas) == 2 and all(0 <= b < 1 for b in o.arch_betas),
               "[beta1, beta2] in [0, 1)"),
              ("arch_weight_decay", o.arch_weight_decay, o.arch_weight_decay >= 0, "a number >= 0"),
              ("arch_fraction", o.arch_fraction, 0 < o.arch_fraction < 1, "a fraction in (0, 1)"),
              ("warmup_epochs", o.warmup_epochs, o.warmup_epochs >= 0, "an integer >= 0")]
    for key, value, ok, allowed in checks:
        if not ok:
            raise UserError(f"{method}.{key}", value, allowed)


@dataclass
class SearchResult:
    """What a supernet search found: the derived network and how the search went."""

    method: str
    objective: str
    spec: ArchSpec
    complexity: dict[str, int]
    history: list[dict] = field(default_factory=list)  # one dict per epoch
    probabilities: dict[str, list[list[float]]] = field(default_factory=dict)  # final softmax(alpha)
    options: dict[str, Any] = field(default_factory=dict)
    steps: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    resumed_from_epoch: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["spec"] = json.loads(self.spec.to_json())
        d["arch_id"] = self.spec.arch_id
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)
