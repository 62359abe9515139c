"""Jigsaw puzzles (Noroozi & Favaro 2016, as in UnNAS): predict which permutation shuffled the tiles.

Per image (all batched, no per-image Python loop):

1. training only: horizontal flip (p = 0.5) and grayscale with probability ``gray_prob``
   (colour images only; the luma is copied to every channel);
2. dataset normalization, then the centred ``g*c x g*c`` region is cut into a ``g x g`` grid of
   cells of side ``c = min(H, W) // g``;
3. from each cell a tile of side ``t = max(1, int(c * tile_fraction))`` is cropped: at a random
   offset in ``[0, c - t]`` per tile and axis in training (the random gap between tiles), at the
   centre of the cell in evaluation;
4. each tile is normalized on its own: zero mean and unit standard deviation over all its pixels
   and channels (``eps`` guards constant tiles);
5. a permutation index ``k`` is drawn uniformly from the generator passed in (in evaluation
   without a generator: ``k = i mod K`` for the i-th image of the batch); position ``p`` of the
   shuffled sequence holds the tile of cell ``perms[k][p]`` (cells numbered row-major; UnNAS's
   code uses the inverse convention, which for the full 2x2 set is the same task);
6. every tile goes through the shared backbone (pooled features), the features are concatenated
   in position order and a linear head predicts ``k``.

The permutation set is a pure function of ``(grid, num_perms, perm_seed, perm_criterion)``: all
``(g*g)!`` permutations in lexicographic order when ``num_perms >= (g*g)!`` (the 2x2 default: 24),
else ``num_perms`` chosen greedily (:func:`permutation_set`): by default Noroozi & Favaro's rule,
each new permutation the one with the largest summed Hamming distance to those already chosen
(``perm_criterion=sum``); ``perm_criterion=min`` maximizes the minimum distance instead (a set
whose closest pair is as far apart as possible).

Evaluation features (:meth:`Jigsaw.features`, kNN / probes) are the pooled features of the
*whole* image, normalized like a training tile (dataset normalization, then per-image zero mean
and unit standard deviation), so the backbone sees the statistics it was trained on.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from unnas.pretext.color import rgb_to_gray

from unnas.data.augment import random_flip
from unnas.errors import UserError
from unnas.objectives.base import DataInfo, Objective, accuracy
from unnas.registry import OBJECTIVES

_MAX_ENUMERATED = 9  # enumerate all permutations up to 3x3 (9! = 362,880 candidates)
PERM_CRITERIA = ("sum", "min")
_POOL = 100_000  # random candidate pool for larger grids


@dataclass(frozen=True)
class JigsawOptions:
    grid: int = 2  # g: the image is cut into g x g tiles
    num_perms: int = 100  # classes; all (g*g)! permutations when this is at least (g*g)!
    perm_seed: int = 0  # seeds the greedy permutation selection (unused when all are taken)
    perm_criterion: str = "sum"  # greedy rule: sum (Noroozi & Favaro) | min (maximin Hamming distance)
    gray_prob: float = 0.3  # probability of a grayscale image in training (colour data only)
    tile_fraction: float = 0.76  # tile side / cell side; the rest is the random gap (UnNAS: 0.76)
    flip: bool = True  # random horizontal flip in training
    eps: float = 1e-3  # added to the tile variance before the square root


# ---------------------------------------------------------------- permutation sets
def hamming_matrix(perms: np.ndarray) -> np.ndarray:
    """Pairwise Hamming distances (number of positions that differ) of ``(K, n)`` permutations."""
    perms = np.asarray(perms)
    return (perms[:, None, :] != perms[None, :, :]).sum(-1)


def min_hamming(perms: np.ndarray) -> int:
    """Minimum pairwise Hamming distance of a permutation set (``n`` for a single permutation)."""
    d = hamming_matrix(perms)
    if len(d) < 2:
        return int(np.asarray(perms).shape[1])
    return int(d[~np.eye(len(d), dtype=bool)].min())


@lru_cache(maxsize=8)
def _candidates(n: int, seed: int) -> np.ndarray:
    if n <= _MAX_ENUMERATED:
        return np.array(list(itertools.permutations(range(n))), dtype=np.int8)
    rng = np.random.default_rng(seed)
    return np.argsort(rng.random((_POOL, n)), axis=1).astype(np.int8)


@lru_cache(maxsize=16)
def permutation_set(grid: int, num_perms: int, seed: int = 0, criterion: str = "sum") -> np.ndarray:
    """``(K, g*g)`` int64 permutations of the tile positions, a pure function of the arguments.

    ``K = min(num_perms, (g*g)!)``. When every permutation is kept they come in lexicographic
    order (so index 0 is the identity). Otherwise greedy selection: start from a candidate drawn
    with ``numpy.random.default_rng(seed)``, then repeatedly add the candidate not yet chosen with

    * ``criterion="sum"`` (Noroozi & Favaro 2016, the default): the largest summed Hamming
      distance to the chosen set; ties go to the first such candidate (as their argmax);
    * ``criterion="min"``: the largest minimum Hamming distance to the chosen set (farthest-point
      selection); ties go to the largest summed distance, remaining ties to a seeded random choice.

    Candidates are all ``(g*g)!`` permutations in lexicographic order up to 3x3, else a seeded pool
    of 100,000 random ones.
    """
    n = grid * grid
    if grid < 2:
        raise UserError("jigsaw.grid", grid, "an integer >= 2")
    if num_perms < 2:
        raise UserError("jigsaw.num_perms", num_perms, "an integer >= 2")
    if criterion not in PERM_CRITERIA:
        raise UserError("jigsaw.perm_criterion", criterion, PERM_CRITERIA)
    if n <= _MAX_ENUMERATED and num_perms >= math.factorial(n):
        return _candidates(n, seed).astype(np.int64)
    cand = _candidates(n, seed)
    if num_perms > len(cand):
        raise UserError("jigsaw.num_perms", num_perms, f"at most {len(cand)} for a {grid}x{grid} grid")
    cols = np.ascontiguousarray(cand.T)  # (n, N): one contiguous row per position

    def dist(j: int) -> np.ndarray:  # Hamming distance of every candidate to candidate j
        return n - (cols == cand[j][:, None]).sum(0, dtype=np.int16)

    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(len(cand)))]
    dmin = dist(chosen[0])
    dsum = dmin.astype(np.int64)
    dmin[chosen[0]] = -1
    dsum[chosen[0]] = -1
    for _ in range(num_perms - 1):
        if criterion == "sum":
            j = int(np.argmax(dsum))
        else:
            best = np.flatnonzero(dmin == dmin.max())
            if len(best) > 1:
                best = best[dsum[best] == dsum[best].max()]
            j = int(best[rng.integers(len(best))]) if len(best) > 1 else int(best[0])
        chosen.append(j)
        d = dist(j)
        np.minimum(dmin, d, out=dmin)
        dsum += d
        dmin[chosen] = -1
        dsum[chosen] = -1
    return cand[chosen].astype(np.int64)


# ---------------------------------------------------------------- tiles
def tile_geometry(size: tuple[int, int], grid: int, tile_fraction: float) -> tuple[int, int, int, int]:
    """``(cell, tile, top, left)``: cell and tile sides and the offset of the centred grid."""
    h, w = size
    cell = min(h, w) // grid
    if cell < 1:
        raise UserError("jigsaw.grid", grid, f"at most {min(h, w)} for {h}x{w} images",
                        message="grid finer than the image")
    tile = max(1, min(cell, int(cell * tile_fraction)))
    return cell, tile, (h - grid * cell) // 2, (w - grid * cell) // 2


def extract_tiles(x: torch.Tensor, grid: int, tile: int, offsets: torch.Tensor | None = None,
                  cell: int | None = None, origin: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Cut ``(B, C, H, W)`` into ``(B, g*g, C, t, t)`` tiles, cells in row-major order.

    Tile ``(i, j)`` starts at ``origin + (i*cell, j*cell) + offsets[b, i*g + j]``; ``offsets``
    ``(B, g*g, 2)`` defaults to centring the tile in its cell. One ``unfold`` view of every
    ``t x t`` window plus one gather; no copy of the image."""
    b, c, h, w = x.shape
    cell = min(h, w) // grid if cell is None else cell
    if offsets is None:
        offsets = torch.full((b, grid * grid, 2), (cell - tile) // 2, dtype=torch.long)
    offsets = offsets.to(x.device)
    ij = torch.arange(grid, device=x.device)
    ys = (origin[0] + ij.repeat_interleave(grid) * cell)[None] + offsets[..., 0]  # (B, P)
    xs = (origin[1] + ij.repeat(grid) * cell)[None] + offsets[..., 1]
    windows = x.unfold(2, tile, 1).unfold(3, tile, 1)  # (B, C, H-t+1, W-t+1, t, t), a view
    bi = torch.arange(b, device=x.device)[:, None]
    return windows[bi, :, ys, xs]  # (B, P, C, t, t)


def shuffle_tiles(tiles: torch.Tensor, perms: torch.Tensor) -> torch.Tensor:
    """Position ``p`` of image ``b`` receives the tile of cell ``perms[b, p]``."""
    idx = perms.to(tiles.device).view(*perms.shape, *([1] * (tiles.dim() - 2))).expand_as(tiles)
    return torch.gather(tiles, 1, idx)


def unshuffle_tiles(shuffled: torch.Tensor, perms: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`shuffle_tiles`: put every tile back into its cell."""
    return shuffle_tiles(shuffled, torch.argsort(perms, dim=1))


def assemble_tiles(tiles: torch.Tensor, grid: int) -> torch.Tensor:
    """``(B, g*g, C, t, t)`` row-major tiles -> ``(B, C, g*t, g*t)`` image."""
    b, _, c, t, _ = tiles.shape
    return tiles.view(b, grid, grid, c, t, t).permute(0, 3, 1, 4, 2, 5).reshape(b, c, grid * t, grid * t)


def standardize(x: torch.Tensor, dims: tuple[int, ...], eps: float) -> torch.Tensor:
    """Zero mean, unit standard deviation over ``dims`` (population variance plus ``eps``)."""
    var, mean = torch.var_mean(x, dim=dims, keepdim=True, correction=0)
    return (x - mean) * torch.rsqrt(var + eps)


# ---------------------------------------------------------------- objective
@OBJECTIVES.register("jigsaw", config=JigsawOptions)
class Jigsaw(Objective):
    name = "jigsaw"

    @classmethod
    def check_data(cls, info: DataInfo, options: JigsawOptions | None = None) -> None:
        options = options or JigsawOptions()
        if not isinstance(options.grid, int) or options.grid < 2:
            raise UserError("jigsaw.grid", options.grid, "an integer >= 2")
        if not 0.0 <= options.gray_prob <= 1.0:
            raise UserError("jigsaw.gray_prob", options.gray_prob, "a probability in [0, 1]")
        if not 0.0 < options.tile_fraction <= 1.0:
            raise UserError("jigsaw.tile_fraction", options.tile_fraction, "a fraction in (0, 1]")
        if options.eps <= 0:
            raise UserError("jigsaw.eps", options.eps, "a positive number")
        if options.perm_criterion not in PERM_CRITERIA:
            raise UserError("jigsaw.perm_criterion", options.perm_criterion, PERM_CRITERIA)
        tile_geometry(info.image_size, options.grid, options.tile_fraction)  # grid finer than the image

    def __init__(self, backbone, info, options: JigsawOptions | None = None):
        options = options or JigsawOptions()
        self.check_data(info, options)
        super().__init__(backbone, info, options)
        self.grid = options.grid
        self.cell, self.tile, self.top, self.left = tile_geometry(info.image_size, options.grid,
                                                                  options.tile_fraction)
        self.register_buffer("perms", torch.from_numpy(
            permutation_set(options.grid, options.num_perms, options.perm_seed, options.perm_criterion)),
            persistent=False)
        self.num_perms = int(self.perms.shape[0])
        self.head = nn.Linear(backbone.num_features * options.grid ** 2, self.num_perms)

    def _prepare_image(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        x = images
        if self.training and self.options.flip:
            x = random_flip(x, generator)
        x = x.float() / 255.0
        if self.training and self.options.gray_prob > 0 and x.shape[1] == 3:
            gray = (torch.rand(x.shape[0], generator=generator) < self.options.gray_prob).to(x.device)
            x = torch.where(gray.view(-1, 1, 1, 1), rgb_to_gray(x).expand_as(x), x)
        m = torch.as_tensor(self.info.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        s = torch.as_tensor(self.info.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return (x - m) / s

    def _labels(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        if self.training or generator is not None:
            return torch.randint(0, self.num_perms, (n,), generator=generator)
        return torch.arange(n) % self.num_perms  # evaluation without a generator: deterministic

    def prepare(self, images: torch.Tensor, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 ``(B, C, H, W)`` -> shuffled normalized tiles ``(B, g*g, C, t, t)`` and labels ``(B,)``."""
        x = self._prepare_image(images, generator)
        b, p = x.shape[0], self.grid ** 2
        offsets = None
        if self.training:
            offsets = torch.randint(0, self.cell - self.tile + 1, (b, p, 2), generator=generator)
        tiles = extract_tiles(x, self.grid, self.tile, offsets, self.cell, (self.top, self.left))
        tiles = standardize(tiles, (2, 3, 4), self.options.eps)
        labels = self._labels(b, generator).to(x.device)
        return shuffle_tiles(tiles, self.perms[labels]), labels

    def logits(self, tiles: torch.Tensor) -> torch.Tensor:
        b, p = tiles.shape[:2]
        feats = self.backbone.pooled(tiles.reshape(b * p, *tiles.shape[2:]))  # (B*P, D)
        return self.head(feats.reshape(b, -1))  # concatenated in position order

    def train_input(self, images, generator):
        tiles, _ = self.prepare(images, generator)
        return tiles.flatten(0, 1)

    def eval_input(self, images):
        """The whole image, dataset-normalized then standardized per image like a tile."""
        return standardize(self.normalize(images), (1, 2, 3), self.options.eps)

    def forward(self, images, labels=None, generator=None):
        tiles, target = self.prepare(images, generator)
        logits = self.logits(tiles)
        return {"loss": F.cross_entropy(logits, target), "acc": accuracy(logits, target),
                "n": torch.tensor(target.shape[0])}
