"""The proxy contract: :class:`ProxyInput`, :func:`compute_proxy` and the pieces proxies share.

A proxy is a pure function ``f(x: ProxyInput, options) -> float`` registered in
:data:`unnas.registry.PROXIES`::

    @PROXIES.register("synflow", log_scale=True, needs_loss=False, config=None)
    def synflow(x, options): ...

* ``x.objective`` is a label-free objective that owns the untrained candidate backbone; proxies that
  need a loss call ``objective(images, None, generator)["loss"]`` (no label exists anywhere).
* ``x.images`` is a uint8 ``(B, C, H, W)`` batch from the training split; a proxy reads the first
  ``options.batch_size`` images (``options.batches`` times as many for ZiCo; options that define
  ``images_needed()`` say themselves, e.g. one image when a proxy draws Gaussian inputs), see
  :func:`images_needed`.
* **Higher is better** for every registered proxy.
* Metadata: ``log_scale`` (the value spans many decades: rank and report :func:`scaled`, its
  ``log10``), ``needs_loss`` (uses the objective's label-free loss), ``config`` (the options
  dataclass; its defaults are the papers' settings).

Every proxy works on a deep copy of the objective or backbone (:func:`objective_copy`,
:func:`backbone_copy`), so the caller's network keeps its weights, BN statistics, train/eval modes,
``requires_grad`` flags and gradients. :func:`compute_proxy` runs a proxy on a private copy of the
generator, so the value does not depend on what ran before and the caller's generator is not
advanced.

Proxies of one network and batch that compute the same intermediate (SWAP's count for ``swap`` and
``swap_reg``; AZ-NAS's cell entropies; the one backward of ``grad_norm``, ``snip`` and ``fisher``)
share it through ``ProxyInput.memo`` (:func:`shared`): the caller passes one dict to every proxy
of the same candidate (a job process keeps one per network, :func:`unnas.jobs.proxy_memo`); the
value is the one computed alone.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from unnas.errors import UserError
from unnas.objectives.base import Objective
from unnas.registry import PROXIES
from unnas.spec import Backbone

# log10 of the smallest positive float64: what a log-scaled proxy's 0 is ranked and reported as
LOG10_ZERO = math.log10(5e-324)
WEIGHT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


class NonFiniteProxy(ArithmeticError):
    """A proxy's value is NaN or infinite (e.g. NASWOT's kernel is singular)."""

    def __init__(self, name: str, value: float):
        self.name = name
        self.value = value
        super().__init__(f"proxy {name} is not finite on this network and batch: {value}")


@dataclass
class ProxyInput:
    """One untrained candidate and one label-free batch."""

    objective: Objective
    images: torch.Tensor
    generator: torch.Generator
    # results that several proxies of this network and batch share (see :func:`shared`); None: none
    memo: dict | None = None

    @property
    def backbone(self) -> Backbone:
        return self.objective.backbone

    @property
    def device(self) -> torch.device:
        return module_device(self.objective)

    def batch(self, n: int | None = None, field: str = "batch_size") -> torch.Tensor:
        """The first ``n`` images (all of them when ``n`` is None), on the objective's device."""
        if n is not None and n > self.images.shape[0]:
            raise UserError(f"proxy option {field}", n, f"at most the {self.images.shape[0]} images of the batch",
                            message=f"the proxy needs {n} images, the batch has {self.images.shape[0]}")
        return (self.images if n is None else self.images[:n]).to(self.device)

    def inputs(self, n: int | None = None) -> torch.Tensor:
        """What the backbone sees: ``objective.eval_input`` of the first ``n`` images (float, normalized)."""
        return self.objective.eval_input(self.batch(n))


def module_device(module: nn.Module) -> torch.device:
    first = next(iter(module.parameters()), None)
    return first.device if first is not None else torch.device("cpu")


def _fresh_copy(module: nn.Module) -> nn.Module:
    out = copy.deepcopy(module)
    for p in out.parameters():
        p.grad = None
    return out.train()


def objective_copy(x: ProxyInput) -> Objective:
    """A deep copy of the objective (with its backbone) in training mode (BN on batch statistics,
    as the reference implementations run their proxies), gradients cleared."""
    return _fresh_copy(x.objective)


def backbone_copy(x: ProxyInput) -> Backbone:
    """A deep copy of the backbone alone, in training mode, gradients cleared."""
    return _fresh_copy(x.backbone)


def weight_layers(module: nn.Module) -> list[nn.Module]:
    """Convolutions and linear layers whose weight is trained (what the per-weight proxies sum over)."""
    return [m for m in module.modules() if isinstance(m, WEIGHT_LAYERS) and m.weight.requires_grad]


def label_free_loss(objective: Objective, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return objective(images, None, generator)["loss"]


def loss_gradients(objective: Objective, images: torch.Tensor, generator: torch.Generator,
                   layers: list[nn.Module], create_graph: bool = False) -> list[torch.Tensor]:
    """``d loss / d weight`` of each layer for one batch (zeros where a weight does not reach the loss)."""
    loss = label_free_loss(objective, images, generator)
    grads = torch.autograd.grad(loss, [m.weight for m in layers], allow_unused=True, create_graph=create_graph)
    return [torch.zeros_like(m.weight) if g is None else g for m, g in zip(layers, grads)]


def memo_key(x: ProxyInput, part: str, n: int | None, *settings: Any) -> tuple | None:
    """The key of a shared result: its name, the settings it depends on, the ``n`` images it reads
    (their bytes) and the generator's state (what it will draw); None without a memo."""
    if x.memo is None:
        return None
    images = x.images if n is None else x.images[:n]
    digest = hashlib.blake2b(images.cpu().numpy().tobytes(), digest_size=16).hexdigest()
    state = hashlib.blake2b(x.generator.get_state().numpy().tobytes(), digest_size=16).hexdigest()
    return (part, settings, tuple(images.shape), digest, state)


def shared(x: ProxyInput, key: tuple | None, compute: Callable[[], Any]) -> Any:
    """``compute()``, or its result computed by an earlier proxy of the same ``x.memo`` under the same
    ``key`` (:func:`memo_key`). A reused result does not advance ``x.generator``: only results after
    which the proxy draws nothing more are shared."""
    if key is None:
        return compute()
    if key not in x.memo:
        x.memo[key] = compute()
    return x.memo[key]


def fork(generator: torch.Generator) -> torch.Generator:
    """A new generator in the same state (drawing from it leaves ``generator`` untouched)."""
    g = torch.Generator(device=generator.device)
    g.set_state(generator.get_state())
    return g


# ----------------------------------------------------------------------- activation patterns
_RELUS = frozenset({torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_, nn.functional.relu,
                    nn.functional.relu_})


class ReluRecorder(TorchFunctionMode):
    """Records the output of every ReLU applied while active, whether by an ``nn.ReLU`` module or a
    functional call (``torch.relu``, ``F.relu``, ``x.relu()``, in place or not)."""

    def __init__(self, keep: Callable[[torch.Tensor], bool] = lambda t: True):
        super().__init__()
        self.keep = keep
        self.outputs: list[torch.Tensor] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in _RELUS and isinstance(out, torch.Tensor) and self.keep(out):
            self.outputs.append(out.detach())
        return out


def relu_patterns(net: nn.Module, inputs: torch.Tensor, keep: Callable[[torch.Tensor], bool] = lambda t: True
                  ) -> list[torch.Tensor]:
    """Binary activation patterns ``(B, units)`` (True where the unit is active) of every recorded
    ReLU of one forward pass, in order."""
    with torch.no_grad(), ReluRecorder(keep) as rec:
        net(inputs)
    if not rec.outputs:
        raise UserError("proxy network", type(net).__name__, "networks with ReLU activations",
                        message="the network applies no ReLU, so it has no activation pattern")
    return [o.reshape(o.shape[0], -1) > 0 for o in rec.outputs]


# ------------------------------------------------------------------------------- the registry
def _options(name: str, options: Any) -> Any:
    cls = PROXIES.meta(name).get("config")
    if cls is None:
        if options not in (None, {}):
            raise UserError(f"proxy {name} options", options, "none (this proxy has no options)")
        return None
    if options is None:
        return cls()
    if isinstance(options, cls):
        return options
    if isinstance(options, Mapping):
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - fields)
        if unknown:
            raise UserError(f"proxy {name} option", unknown[0], sorted(fields), message=f"unknown option {unknown[0]!r}")
        return cls(**options)
    raise UserError(f"proxy {name} options", type(options).__name__, f"{cls.__name__} or a mapping of its fields")


def check_loss(name: str, objective: type[Objective] | Objective) -> None:
    """Refuse an objective whose fresh loss is constant as the loss of a proxy that reads it (a
    fresh MoCo has an empty queue: its InfoNCE is exactly 0, so every gradient proxy would be 0)."""
    if not PROXIES.meta(name).get("needs_loss"):
        return
    if objective.uses_labels:
        raise UserError(f"proxy {name} objective", objective.name, "a label-free objective",
                        message=f"{name} uses the objective's loss, which must not read labels")
    if not objective.fresh_loss_informative:
        from unnas.registry import OBJECTIVES

        fit = [n for n in OBJECTIVES.names() if getattr(OBJECTIVES.get(n), "fresh_loss_informative", True)
               and not OBJECTIVES.get(n).uses_labels and "image" in OBJECTIVES.get(n).data_kinds]
        raise UserError("proxy.loss", objective.name, fit, message=f"the loss of an untrained {objective.name} "
                        f"is constant (its queue of negatives starts empty), so {name} would be 0 for every network")


def check_options(name: str, options: Any = None) -> Any:
    """The options of proxy ``name`` (a mapping, its dataclass or None) checked as completely as
    they can be without a network: unknown fields, invalid values and, through the options'
    ``require()`` when they define one, fields that have no default and were not set. Returns the
    options dataclass (None for a proxy without options); raises :class:`UserError` naming the
    field. The runner calls it for every proxy of a run before any job."""
    PROXIES.get(name)  # unknown names -> UserError listing the registered proxies
    opts = _options(name, options)
    require = getattr(opts, "require", None)
    if callable(require):
        require()
    return opts


def check_positive(proxy: str, **values: int) -> None:
    for key, v in values.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise UserError(f"proxy {proxy} option {key}", v, "a positive integer")


def _needed(opts: Any) -> int:
    own = getattr(opts, "images_needed", None)  # options whose count depends on another field
    return own() if callable(own) else getattr(opts, "batch_size", 1) * getattr(opts, "batches", 1)


def images_needed(name: str, options: Any = None) -> int:
    """How many images of ``ProxyInput.images`` the proxy reads (its batch size times its batches)."""
    return _needed(_options(name, options))


def _check_input(name: str, x: ProxyInput, opts: Any) -> None:
    if not isinstance(x, ProxyInput):
        raise UserError(f"proxy {name} input", type(x).__name__, "a ProxyInput")
    if not isinstance(x.images, torch.Tensor) or x.images.dtype != torch.uint8 or x.images.dim() != 4:
        shown = getattr(x.images, "dtype", type(x.images).__name__)
        raise UserError(f"proxy {name} images", shown, "a uint8 tensor (B, C, H, W)")
    have, need = x.images.shape[0], _needed(opts)
    if have < need:
        field = "batch_size" if getattr(opts, "batches", 1) == 1 else "batch_size x batches"
        raise UserError(f"proxy {name} option {field}", need, f"at most the {have} images of the batch",
                        message=f"{name} reads {need} images, the batch has {have}")
    check_loss(name, x.objective)


def compute_proxy(name: str, x: ProxyInput, options: Any = None) -> float:
    """The value of proxy ``name`` on ``x`` (higher is better); raises :class:`NonFiniteProxy`
    when it is NaN or infinite, :class:`UserError` for an unknown name or bad options/input."""
    fn = PROXIES.get(name)
    opts = check_options(name, options)
    _check_input(name, x, opts)
    value = float(fn(dataclasses.replace(x, generator=fork(x.generator)), opts))
    if not math.isfinite(value):
        raise NonFiniteProxy(name, value)
    return value


def scaled(name: str, value: float) -> float:
    """The number to rank and report: ``log10(value)`` for ``log_scale`` proxies (0 becomes
    :data:`LOG10_ZERO`, below every positive value; a negative value is an error), else ``value``."""
    if not PROXIES.meta(name).get("log_scale"):
        return float(value)
    if value < 0:
        raise ValueError(f"proxy {name} is log-scaled but its value is negative: {value}")
    return math.log10(value) if value > 0 else LOG10_ZERO
