"""Architecture specifications, the Backbone contract and the generator interface.

* :class:`ArchSpec` ``(generator, params, seed)`` names one candidate network; its canonical
  JSON gives a stable :attr:`ArchSpec.arch_id`.
* :class:`Backbone` is timm's feature interface: ``forward_features(x)`` returns the unpooled
  map ``(B, C, h, w)``, ``forward_head(features, pre_logits=True)`` the pooled ``(B, D)``
  vector, and ``num_features`` is ``D``. Backbones without a spatial map (an MLP) return
  ``(B, D)`` from both and set ``has_spatial = False``. Optional attributes: ``structure`` (a
  text description of the sampled network) and ``has_zero_ops`` (some operations output zeros,
  e.g. NAS-Bench-201 ``none`` edges, so their inputs get no gradient).
* Video backbones take clips ``(B, T, C, H, W)`` and return ``(B, C, t, h, w)`` maps from
  ``forward_features``; their generator says ``data_kind = "video"``.
* :class:`Generator` maps ``(params, seed)`` to a backbone, purely: graph randomness comes from
  ``numpy.random.default_rng(seed)``; weight initialisation uses torch's RNG, so the same spec
  under the same torch seed builds the same weights.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from unnas.errors import UserError
from unnas.registry import GENERATORS


def _canonical(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _canonical(obj[k]) for k in sorted(obj, key=str)}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (bool, int, float, str)) or obj is None:
        return obj
    raise TypeError(f"spec parameters must be JSON values, got {type(obj).__name__}: {obj!r}")


@dataclass(frozen=True)
class ArchSpec:
    """One candidate network: a generator name, its parameters and a seed."""

    generator: str
    params: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", _canonical(dict(self.params)))
        object.__setattr__(self, "seed", int(self.seed))

    def to_json(self) -> str:
        return json.dumps({"generator": self.generator, "params": self.params, "seed": self.seed},
                          sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "ArchSpec":
        d = json.loads(text)
        return cls(d["generator"], d.get("params", {}), d.get("seed", 0))

    @property
    def arch_id(self) -> str:
        return hashlib.sha1(self.to_json().encode()).hexdigest()[:10]

    def __hash__(self) -> int:
        return hash(self.to_json())


class Backbone(nn.Module):
    """Base class of every generated network (timm-style feature interface).

    Subclasses implement :meth:`forward_features`; the default :meth:`forward_head` global-
    average-pools a map and applies the optional linear classifier ``self.classifier``.
    """

    num_features: int
    has_spatial: bool = True

    def __init__(self) -> None:
        super().__init__()
        self.classifier: nn.Module | None = None

    def set_classifier(self, num_classes: int | None) -> None:
        self.classifier = nn.Linear(self.num_features, num_classes) if num_classes else None

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise TypeError(f"{type(self).__name__} does not define forward_features")

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if x.dim() == 4:
            x = x.mean(dim=(2, 3))
        if pre_logits or self.classifier is None:
            return x
        return self.classifier(x)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features of an input batch: what kNN and probes see."""
        return self.forward_head(self.forward_features(x), pre_logits=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class Generator:
    """A network generator g(params, seed). Subclass, set ``name`` and ``defaults``, register.

    ``defaults`` lists every accepted parameter with its default value; unknown parameters are
    rejected. ``space`` (optional) describes how :meth:`sample_params` draws parameters.
    """

    name: str = ""
    defaults: dict[str, Any] = {}
    data_kind: str = "image"  # what its networks take: "image" (B, C, H, W) or "video" (B, T, C, H, W)
    default_frames: int = 16  # video generators: clip length used to measure FLOPs when none is given

    def resolve(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        params = dict(params or {})
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise UserError(f"generator {self.name} parameter", unknown[0], sorted(self.defaults),
                            message=f"unknown parameter {unknown[0]!r}")
        out = dict(self.defaults)
        for k, v in params.items():
            d = self.defaults[k]
            if d is not None and not isinstance(v, type(d)) and not (isinstance(d, float) and isinstance(v, int)):
                raise UserError(f"generator {self.name} parameter {k}", v,
                                f"a value of type {type(d).__name__}", message=f"wrong type {type(v).__name__}")
            out[k] = v
        return out

    def sample_params(self, rng: np.random.Generator, base: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Draw parameters from the design space. The default space is the fixed ``base``."""
        return self.resolve(base)

    def build(self, params: Mapping[str, Any], seed: int, in_channels: int,
              num_classes: int | None = None) -> Backbone:  # pragma: no cover - abstract
        raise TypeError(f"generator {self.name} does not define build")

    def measures(self, params: Mapping[str, Any], seed: int) -> dict[str, float]:
        """Extra descriptive numbers for a spec (e.g. a graph's clustering C and path length L)."""
        return {}

    def uses_seed(self, params: Mapping[str, Any]) -> bool:
        """Whether the seed changes the network (a random graph) or not (a fixed ResNet): when it
        does not, populations set the spec seed to 0 so equal networks share an ``arch_id``."""
        return True


def get_generator(name: str) -> Generator:
    gen = GENERATORS.get(name)
    return gen() if isinstance(gen, type) else gen


def check_generator_kind(name: str, kind: str) -> None:
    """Raise :class:`UserError` (naming the generators that fit) unless generator ``name`` builds
    networks for ``kind`` data (``"image"`` or ``"video"``)."""
    own = getattr(get_generator(name), "data_kind", "image")
    if own != kind:
        fit = [n for n in GENERATORS.names() if getattr(get_generator(n), "data_kind", "image") == kind]
        raise UserError("--generator", name, fit, message=f"generator {name} builds {own} networks, "
                                                          f"and the data holds {kind} data")


def build(spec: ArchSpec, in_channels: int, num_classes: int | None = None) -> Backbone:
    """Build the network of ``spec`` (pure: same spec and torch seed, same weights)."""
    gen = get_generator(spec.generator)
    net = gen.build(gen.resolve(spec.params), spec.seed, in_channels, num_classes)
    if not isinstance(net, Backbone):
        raise TypeError(f"generator {spec.generator} returned {type(net).__name__}, not a Backbone")
    return net
