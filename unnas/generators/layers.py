"""Building blocks shared by the generators: cell operations, parameter checks and the
parameter samplers of NDS (uniform / log-uniform / power-of-two / choice).

Operation conventions follow DARTS / NAS-Bench-201: ``ReLU -> conv -> BN`` ("nor_conv"),
separable convs as depthwise + pointwise, ``FactorizedReduce`` for stride-2 identities.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from unnas.errors import UserError
from unnas.generators.encoding import check_codes, fixed_in_base, from_digits, to_digits
from unnas.spec import Generator


# ---------------------------------------------------------------- parameter checks and samplers
def bad_param(gen: str, key: str, value: Any, allowed: Any, message: str | None = None) -> UserError:
    """The :class:`UserError` for one bad generator parameter."""
    return UserError(f"generator {gen} parameter {key}", value, allowed, message=message)


def draw(rng: np.random.Generator, spec: Sequence[Any]) -> Any:
    """One value from a sampler spec.

    * ``("choice", [a, b, ...])``: uniform over the listed values;
    * ``("uniform", lo, hi)``: uniform integer in ``[lo, hi]``;
    * ``("uniform_float", lo, hi)``: uniform real in ``[lo, hi)``;
    * ``("log_uniform", lo, hi)``: ``round(exp(U(log lo, log hi)))``, an integer in ``[lo, hi]``;
    * ``("pow2", lo, hi)``: uniform over the powers of two in ``[lo, hi]``.
    """
    kind = spec[0]
    if kind == "choice":
        values = list(spec[1])
        return values[int(rng.integers(len(values)))]
    lo, hi = spec[1], spec[2]
    if kind == "uniform":
        return int(rng.integers(int(lo), int(hi) + 1))
    if kind == "uniform_float":
        return float(rng.uniform(lo, hi))
    if kind == "log_uniform":
        return int(min(hi, max(lo, round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))))
    if kind == "pow2":
        exps = list(range(int(math.ceil(math.log2(lo))), int(math.floor(math.log2(hi))) + 1))
        if not exps:
            raise ValueError(f"no power of two in [{lo}, {hi}]")
        return 2 ** exps[int(rng.integers(len(exps)))]
    raise ValueError(f"unknown sampler {kind!r}")


def log_spaced(lo: int, hi: int, n: int) -> list[int]:
    """``n`` integers spaced about evenly in log space from ``lo`` to ``hi`` (NDS's "a, b, n")."""
    vals = np.exp(np.linspace(math.log(lo), math.log(hi), n))
    return sorted({int(round(v)) for v in vals})


def sample_space(rng: np.random.Generator, space: Mapping[str, Sequence[Any]],
                 base: Mapping[str, Any] | None) -> dict[str, Any]:
    """Draw every parameter of ``space`` not fixed in ``base`` (in the order of ``space``)."""
    out = {}
    for key, spec in space.items():
        if base and key in base:
            continue
        out[key] = draw(rng, spec)
    return out


# ------------------------------------------------------------------------------- operations
class ReLUConvBN(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int | None = None,
                 dilation: int = 1):
        pad = (kernel // 2) * dilation if padding is None else padding
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(cin, cout, kernel, stride, pad, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout))


class SepConv(nn.Sequential):
    """DARTS separable conv: (ReLU, depthwise k x k, pointwise, BN) twice; stride on the first."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, dilation: int = 1):
        pad = (kernel // 2) * dilation
        super().__init__(
            nn.ReLU(inplace=False), nn.Conv2d(cin, cin, kernel, stride, pad, dilation=dilation, groups=cin, bias=False),
            nn.Conv2d(cin, cin, 1, bias=False), nn.BatchNorm2d(cin),
            nn.ReLU(inplace=False), nn.Conv2d(cin, cin, kernel, 1, pad, dilation=dilation, groups=cin, bias=False),
            nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))


class DilConv(nn.Sequential):
    """DARTS dilated conv: ReLU, depthwise dilated k x k, pointwise, BN."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, dilation: int = 2):
        pad = (kernel // 2) * dilation
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(cin, cin, kernel, stride, pad, dilation=dilation, groups=cin, bias=False),
                         nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))


class FactorizedConv(nn.Sequential):
    """ReLU, 1 x k conv, k x 1 conv, BN (NASNet's "1x7 then 7x1")."""

    def __init__(self, c: int, kernel: int, stride: int):
        pad = kernel // 2
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(c, c, (1, kernel), (1, stride), (0, pad), bias=False),
                         nn.Conv2d(c, c, (kernel, 1), (stride, 1), (pad, 0), bias=False),
                         nn.BatchNorm2d(c))


class FactorizedReduce(nn.Module):
    """Halve the resolution without losing pixels: two stride-2 1x1 convs on offset grids."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        if cout % 2:
            raise ValueError(f"FactorizedReduce needs an even output width, got {cout}")
        self.conv1 = nn.Conv2d(cin, cout // 2, 1, 2, bias=False)
        self.conv2 = nn.Conv2d(cin, cout // 2, 1, 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(x)
        a = self.conv1(x)
        b = self.conv2(nn.functional.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:])
        return self.bn(torch.cat([a, b], dim=1))


class Zero(nn.Module):
    """The ``none`` operation: zeros shaped like the (strided) input, kept in the autograd graph."""

    def __init__(self, stride: int = 1):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x if self.stride == 1 else x[:, :, ::self.stride, ::self.stride]).mul(0.0)


def pool(kind: str, kernel: int, stride: int) -> nn.Module:
    if kind == "avg":
        return nn.AvgPool2d(kernel, stride, kernel // 2, count_include_pad=False)
    return nn.MaxPool2d(kernel, stride, kernel // 2)


class EnumeratedSpace(Generator):
    """A benchmark space of ``size`` networks named by canonical strings (NAS-Bench-201,
    NAS-Bench-Macro): ``params["arch"]`` fixes one network, else the spec seed picks one uniformly;
    population sampling draws the string itself, so equal networks get equal ``arch_id``.

    Subclasses set ``size``, ``from_index`` (index -> canonical string), ``arch_index`` (its
    inverse) and ``canonical`` ((text, generator name) -> canonical string, or :class:`UserError`
    naming the parameter), as static methods, and ``positions`` / ``radix``: the index's
    base-``radix`` digits, most significant first, are the network's encoding (one digit per
    layer or edge)."""

    size: int
    from_index: Callable[[int], str]
    arch_index: Callable[[str], int]
    canonical: Callable[[str, str], str]
    positions: int  # the encoding: the index's ``positions`` base-``radix`` digits
    radix: int

    def arch(self, params: Mapping[str, Any], seed: int) -> str:
        if params["arch"]:
            return self.canonical(params["arch"], self.name)
        return self.from_index(int(np.random.default_rng(seed).integers(self.size)))

    def sample_params(self, rng: np.random.Generator, base: Mapping[str, Any] | None = None) -> dict:
        base = dict(base or {})
        if not base.get("arch"):
            base["arch"] = self.from_index(int(rng.integers(self.size)))
        return self.resolve(base)

    def uses_seed(self, params: Mapping[str, Any]) -> bool:
        return not params["arch"]

    def structure(self, params: Mapping[str, Any], seed: int) -> str:
        """The built network's ``structure`` string, without building it."""
        return self.arch(params, seed)

    # ---- the encoding (unnas.generators.encoding): the digits of the network's index
    def cardinalities(self, base: Mapping[str, Any] | None = None) -> list[int]:
        if (base or {}).get("arch"):
            raise fixed_in_base(self.name, "arch", base)
        return [self.radix] * self.positions

    def encode(self, params: Mapping[str, Any], seed: int = 0) -> list[int]:
        return to_digits(self.arch_index(self.arch(params, seed)), self.radix, self.positions)

    def decode(self, codes: Sequence[int], base: Mapping[str, Any] | None = None) -> dict:
        codes = check_codes(self.name, codes, self.cardinalities(base))
        return self.resolve({**(base or {}), "arch": self.from_index(from_digits(codes, self.radix))})
