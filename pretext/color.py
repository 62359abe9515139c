"""sRGB <-> CIE Lab (D65) in torch, batched, and the quantized ab gamut of Zhang et al. (2016).

Conventions:

* RGB tensors are ``(..., 3, H, W)`` (channel dimension ``-3``), gamma-encoded sRGB in ``[0, 1]``;
  Lab tensors have the same layout with ``L`` in ``[0, 100]``.
* The conversion follows IEC 61966-2-1 (sRGB transfer curve, primaries and D65 white) and
  CIE 1976 L*a*b* with the D65 reference white ``(0.95047, 1, 1.08883)``; it matches
  scikit-image's ``rgb2lab``: pure red is ``(53.24, 80.09, 67.20)``, white ``(100, 0, 0)``.
* ab space is cut into square bins of side :data:`GRID` centred on multiples of ``GRID``: the
  bin of ``(a, b)`` is ``(round(a / GRID), round(b / GRID))``. The *gamut* is the set of bins hit
  by at least one of the ``256**3`` 8-bit sRGB colours (every colour a uint8 image can hold), so
  every pixel of a uint8 image falls in a gamut bin. Classes are numbered in row-major order
  of ``(a bin, b bin)``.
* At grid 10 the gamut has 261 bins, ``a`` in ``[-90, 100]`` and ``b`` in ``[-110, 90]``. Zhang
  et al.'s published list has 313 points; a bin that no 8-bit sRGB colour reaches would only be a
  class that never occurs as a target. Each of the 261 bins contains sRGB colours, but for 32
  bins on the gamut's edge the bin *centre* itself lies (slightly) outside sRGB at every L.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

GRID = 10.0
WHITE_D65 = (0.95047, 1.0, 1.08883)

# linear sRGB -> XYZ (D65), IEC 61966-2-1, the matrix scikit-image uses
_RGB_TO_XYZ = torch.tensor([[0.412453, 0.357580, 0.180423],
                            [0.212671, 0.715160, 0.072169],
                            [0.019334, 0.119193, 0.950227]], dtype=torch.float64)
_EPS = (6.0 / 29.0) ** 3  # CIE f(t) switches from the cube root to a line below this
_KAPPA = 1.0 / (3.0 * (6.0 / 29.0) ** 2)


def _mix(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Apply a 3x3 matrix over the channel dimension -3."""
    return torch.einsum("ij,...jhw->...ihw", m.to(x.dtype).to(x.device), x)


def srgb_to_linear(c: torch.Tensor) -> torch.Tensor:
    return torch.where(c <= 0.04045, c / 12.92, ((c.clamp_min(0) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c: torch.Tensor) -> torch.Tensor:
    return torch.where(c <= 0.0031308, 12.92 * c, 1.055 * c.clamp_min(0) ** (1 / 2.4) - 0.055)


def _f(t: torch.Tensor) -> torch.Tensor:
    """CIE 1976 companding: cube root above ``(6/29)**3``, a line below."""
    return torch.where(t > _EPS, t.clamp_min(_EPS) ** (1.0 / 3.0), t * _KAPPA + 4.0 / 29.0)


def linear_to_lab(lin: torch.Tensor) -> torch.Tensor:
    """Linear-light sRGB ``(..., 3, H, W)`` -> Lab (D65)."""
    xyz = _mix(_RGB_TO_XYZ, lin)
    white = torch.tensor(WHITE_D65, dtype=lin.dtype, device=lin.device).view(3, 1, 1)
    fx, fy, fz = _f(xyz / white).unbind(-3)
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=-3)


def srgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in ``[0, 1]`` ``(..., 3, H, W)`` -> Lab ``(..., 3, H, W)`` (D65)."""
    if rgb.dim() < 3 or rgb.shape[-3] != 3:
        raise ValueError(f"srgb_to_lab needs 3 channels in dimension -3, got shape {tuple(rgb.shape)}")
    return linear_to_lab(srgb_to_linear(rgb))


@lru_cache(maxsize=None)
def _linear_table(dtype: torch.dtype) -> torch.Tensor:
    return srgb_to_linear(torch.arange(256, dtype=torch.float64) / 255.0).to(dtype)


def uint8_to_lab(x: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 sRGB ``(..., 3, H, W)`` -> Lab; the transfer curve is a 256-entry table lookup."""
    if x.dtype != torch.uint8 or x.dim() < 3 or x.shape[-3] != 3:
        raise ValueError(f"uint8_to_lab needs a uint8 (..., 3, H, W) tensor, got {x.dtype} {tuple(x.shape)}")
    return linear_to_lab(_linear_table(dtype).to(x.device)[x.long()])


def lab_to_srgb(lab: torch.Tensor) -> torch.Tensor:
    """Lab ``(..., 3, H, W)`` -> sRGB ``(..., 3, H, W)``, *not* clipped: values outside ``[0, 1]``
    mean the colour lies outside the sRGB gamut."""
    L, a, b = lab.unbind(-3)
    fy = (L + 16.0) / 116.0
    f = torch.stack([fy + a / 500.0, fy, fy - b / 200.0], dim=-3)
    t = torch.where(f > 6.0 / 29.0, f ** 3, (f - 4.0 / 29.0) / _KAPPA)
    white = torch.tensor(WHITE_D65, dtype=lab.dtype, device=lab.device).view(3, 1, 1)
    lin = _mix(torch.linalg.inv(_RGB_TO_XYZ), t * white)
    return linear_to_srgb(lin)


def rgb_to_gray(rgb: torch.Tensor) -> torch.Tensor:
    """Luma of sRGB ``(..., 3, H, W)`` -> ``(..., 1, H, W)`` (ITU-R BT.601 weights, as PIL's "L" mode)."""
    w = torch.tensor([0.299, 0.587, 0.114], dtype=rgb.dtype, device=rgb.device).view(3, 1, 1)
    return (rgb * w).sum(dim=-3, keepdim=True)


@dataclass(frozen=True)
class Gamut:
    """The in-gamut ab bins.

    ``centers``: ``(Q, 2)`` float64 ab bin centres (class order). ``lut``: int64 table over the
    grid cells ``[lo, hi]^2`` (in units of :data:`GRID`) giving each cell's class; a cell outside
    the gamut maps to the nearest gamut centre, so float round-off at a bin edge can never
    produce an invalid class. ``lo``/``hi``: the cell index range covered by ``lut``.
    """

    centers: torch.Tensor
    lut: torch.Tensor
    lo: int
    hi: int

    @property
    def num_bins(self) -> int:
        return int(self.centers.shape[0])

    def quantize(self, ab: torch.Tensor) -> torch.Tensor:
        """ab ``(B, 2, H, W)`` -> class indices ``(B, H, W)`` (int64)."""
        return quantize_ab(ab, self.lut.to(ab.device), self.lo, self.hi)


def quantize_ab(ab: torch.Tensor, lut: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """ab ``(B, 2, H, W)`` -> ``lut[cell]`` where ``cell`` is the nearest grid point in ``[lo, hi]^2``."""
    cell = torch.round(ab / GRID).long().clamp_(lo, hi) - lo
    return lut[cell[:, 0] * (hi - lo + 1) + cell[:, 1]]


@lru_cache(maxsize=None)
def ab_gamut() -> Gamut:
    """Bins of side :data:`GRID` hit by the Lab values of all ``256**3`` 8-bit sRGB colours.

    Exact (float64, every colour); computed once per process in a few seconds, 32 red levels
    at a time to bound memory."""
    lin = _linear_table(torch.float64)
    m = _RGB_TO_XYZ / torch.tensor(WHITE_D65, dtype=torch.float64)[:, None]  # rows give X/Xn, Y/Yn, Z/Zn
    g, b = torch.meshgrid(lin, lin, indexing="ij")
    gb = [(m[i, 1] * g + m[i, 2] * b).reshape(1, -1) for i in range(3)]  # green + blue terms, (1, 65536)
    span = 64  # cells -32..31 in units of GRID: |a|, |b| < 130 for every sRGB colour
    hit = torch.zeros(span * span, dtype=torch.bool)
    for r0 in range(0, 256, 32):
        r = lin[r0:r0 + 32, None]
        fx, fy, fz = (_f(m[i, 0] * r + gb[i]) for i in range(3))  # (32, 65536) each
        a_cell = torch.round(500.0 * (fx - fy) / GRID).long() + span // 2
        b_cell = torch.round(200.0 * (fy - fz) / GRID).long() + span // 2
        hit[(a_cell * span + b_cell).reshape(-1)] = True
    idx = hit.nonzero()[:, 0]
    cells = torch.stack([idx // span, idx % span], dim=1) - span // 2  # (Q, 2), row-major order
    lo, hi = int(cells.min()) - 1, int(cells.max()) + 1
    axis = torch.arange(lo, hi + 1)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), dim=-1).reshape(-1, 2).double()
    lut = torch.cdist(grid, cells.double()).argmin(dim=1)  # exact for hit cells (distance 0)
    return Gamut(centers=cells.double() * GRID, lut=lut, lo=lo, hi=hi)
