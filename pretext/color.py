"""sRGB <-> CIE Lab (D65) in torch, batched, and the quantized ab gamut of Zhang et al. (2016).

Conventions:

* RGB tensors are ``(..., 3, H, W)`` (channel dimension ``-3``), gamma-encoded sRGB in ``[0, 1]``;
  Lab tensors have the same layout with ``L`` in ``[0, 100]``.
* The conversion follows IEC 61966-2-1 (sRGB transfer curve, primaries and D65 white) and
  CIE 1976 L*a*b* with the D65 reference white ``(0.95047, 1, 1.08883)``; it matches
  scikit-image's ``rgb2lab``: pure red is ``(53.24, 80.09, 67.20)``, white ``(100, 0, 0)``.
* ab space is cut into square bins of side :data:`GRID` centred on multiples of ``GRID``: the
  bin of ``(a, b)`` is ``(round(a / GRID), round(b / GRID))``. Two gamuts (:func:`ab_gamut`):

  - ``"centre"`` (the default, Zhang et al.'s "ab values that are in gamut"): the bins hit by at
    least one of the ``256**3`` 8-bit sRGB colours *and* whose centre is itself an sRGB colour
    at some lightness. At grid 10: **229** bins. Every class is a displayable colour.
  - ``"hit"``: every bin hit by an 8-bit sRGB colour. At grid 10: **261** bins, ``a`` in
    ``[-90, 100]``, ``b`` in ``[-110, 90]``; for 32 of them, on the gamut's edge, only part of
    the bin is inside sRGB and the centre is not.

  A pixel whose own bin is not in the gamut (only on the ``"centre"`` gamut's edge, or from
  off-grid float input) takes the class of the nearest bin centre, so :meth:`Gamut.quantize`
  always equals a nearest-neighbour search over the centres. Classes are numbered in row-major
  order of ``(a bin, b bin)``. Zhang et al.'s published list has 313 points; neither the hit
  bins (261) nor the grid points inside the convex hull of sRGB's ab projection (233) reach it.
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
    """Quantized ab classes.

    ``centers``: ``(Q, 2)`` float64 ab bin centres (class order). ``lut``: int64 table over the
    grid cells ``[lo, hi]^2`` (in units of :data:`GRID`) giving each cell's class, ``-1`` for a
    cell outside the gamut; the border rows and columns ``lo`` and ``hi`` are always outside.
    ``kind``: ``"centre"`` or ``"hit"`` (see the module docstring).
    """

    centers: torch.Tensor
    lut: torch.Tensor
    lo: int
    hi: int
    kind: str = "centre"

    @property
    def num_bins(self) -> int:
        return int(self.centers.shape[0])

    def quantize(self, ab: torch.Tensor) -> torch.Tensor:
        """ab ``(B, 2, H, W)`` -> class indices ``(B, H, W)`` (int64)."""
        return quantize_ab(ab, self.lut.to(ab.device), self.lo, self.hi, self.centers)


def quantize_ab(ab: torch.Tensor, lut: torch.Tensor, lo: int, hi: int, centers: torch.Tensor) -> torch.Tensor:
    """ab ``(B, 2, H, W)`` -> the class of the nearest bin centre.

    A table lookup of each pixel's grid cell; the rare pixels whose cell is not a class (outside
    ``[lo, hi]^2`` or marked ``-1``) fall back to an exact nearest-centre search."""
    cell = torch.round(ab / GRID).long().clamp_(lo, hi).sub_(lo)
    idx = lut[cell[:, 0] * (hi - lo + 1) + cell[:, 1]]
    miss = idx < 0  # the border cells lo and hi are never classes, so clamped pixels land here too
    if bool(miss.any()):
        pts = ab.permute(0, 2, 3, 1)[miss].to(centers.dtype)
        idx[miss] = torch.cdist(pts, centers.to(pts.device)).argmin(dim=1)
    return idx


GAMUTS = ("centre", "hit")


@lru_cache(maxsize=None)
def _hit_cells() -> torch.Tensor:
    """``(Q, 2)`` grid cells (units of :data:`GRID`) hit by the Lab values of all ``256**3``
    8-bit sRGB colours, row-major. Exact (float64, every colour), 32 red levels at a time."""
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
    return torch.stack([idx // span, idx % span], dim=1) - span // 2


def centre_in_srgb(centers: torch.Tensor, steps: int = 10001) -> torch.Tensor:
    """``(Q,)`` bool: is ab ``centers[q]`` an sRGB colour (all channels in ``[0, 1]``) at some
    lightness ``L`` of ``steps`` evenly spaced values in ``[0, 100]``?"""
    L = torch.linspace(0, 100, steps, dtype=torch.float64).expand(len(centers), steps)
    ab = centers.to(torch.float64)[:, :, None].expand(-1, -1, steps)
    rgb = lab_to_srgb(torch.stack([L, ab[:, 0], ab[:, 1]], dim=1)[..., None])  # (Q, 3, steps, 1)
    return ((rgb >= 0) & (rgb <= 1)).all(dim=1).flatten(1).any(dim=1)


@lru_cache(maxsize=None)
def ab_gamut(kind: str = "centre") -> Gamut:
    """The ab classes at grid :data:`GRID` (``kind`` in :data:`GAMUTS`); computed once per
    process in a few seconds."""
    if kind not in GAMUTS:
        raise ValueError(f"gamut kind {kind!r}: allowed {', '.join(GAMUTS)}")
    cells = _hit_cells()
    if kind == "centre":
        cells = cells[centre_in_srgb(cells.double() * GRID)]
    lo, hi = int(cells.min()) - 1, int(cells.max()) + 1
    lut = torch.full(((hi - lo + 1) ** 2,), -1, dtype=torch.long)
    lut[(cells[:, 0] - lo) * (hi - lo + 1) + (cells[:, 1] - lo)] = torch.arange(len(cells))
    return Gamut(centers=cells.double() * GRID, lut=lut, lo=lo, hi=hi, kind=kind)
