"""Jigsaw: permutation sets, exact tile reassembly, label wiring, augmentation, tiny images."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from unnas.pretext.jigsaw import (
    Jigsaw,
    JigsawOptions,
    assemble_tiles,
    extract_tiles,
    hamming_matrix,
    min_hamming,
    permutation_set,
    shuffle_tiles,
    standardize,
    unshuffle_tiles,
)

from unnas.errors import UserError
from unnas.objectives.base import DataInfo, build_objective
from unnas.spec import ArchSpec, build


def test_hamming_by_hand():
    p = np.array([[0, 1, 2], [1, 0, 2], [2, 1, 0]])
    assert hamming_matrix(p).tolist() == [[0, 2, 2], [2, 0, 3], [2, 3, 0]]
    assert min_hamming(p) == 2


def test_2x2_set_is_all_24_permutations():
    p = permutation_set(2, 100, 0)
    assert p.shape == (24, 4)
    assert [tuple(r) for r in p] == list(itertools.permutations(range(4)))
    assert np.array_equal(permutation_set(2, 24, 7), p)  # seed unused when all are taken


def _chosen_by_rule(perms: np.ndarray, candidates: np.ndarray, rule: str) -> None:
    """Every permutation after the first is the first candidate (in the candidates' order) that
    maximizes the rule's distance to those chosen before it: ``sum`` (Noroozi & Favaro) or ``min``."""
    index = {tuple(c): i for i, c in enumerate(candidates.tolist())}
    chosen = [index[tuple(perms[0].tolist())]]
    total = np.zeros(len(candidates), dtype=np.int64)
    closest = np.full(len(candidates), candidates.shape[1], dtype=np.int64)
    for k in range(1, len(perms)):
        d = (candidates != candidates[chosen[-1]]).sum(1)  # distances to the last one chosen
        total += d
        np.minimum(closest, d, out=closest)
        score = (total if rule == "sum" else closest).copy()
        score[chosen] = -1
        j = index[tuple(perms[k].tolist())]
        assert score[j] == score.max(), (rule, k, score[j], score.max())
        if rule == "sum":
            assert j == int(np.argmax(score)), (k, j)  # ties: the first candidate
        chosen.append(j)


def test_3x3_default_is_the_published_largest_summed_hamming_distance_rule():
    p = permutation_set(3, 30, 0)
    assert np.array_equal(p, permutation_set(3, 30, 0, "sum"))
    candidates = np.array(list(itertools.permutations(range(9))))
    _chosen_by_rule(p, candidates, "sum")
    m = permutation_set(3, 30, 0, "min")
    _chosen_by_rule(m, candidates, "min")
    assert not np.array_equal(m, p)
    # a 4x4 grid chooses from a seeded pool of random permutations by the same rule
    from unnas.pretext.jigsaw import _candidates

    q = permutation_set(4, 8, 0)
    _chosen_by_rule(q, _candidates(16, 0).astype(np.int64), "sum")
    with pytest.raises(UserError, match="jigsaw.perm_criterion"):
        permutation_set(3, 10, 0, "mean")


@pytest.mark.parametrize("criterion", ["sum", "min"])
def test_3x3_greedy_set_beats_random(criterion):
    p = permutation_set(3, 100, 0, criterion)
    assert p.shape == (100, 9)
    assert (np.sort(p, axis=1) == np.arange(9)).all()  # valid permutations
    assert len(np.unique(p, axis=0)) == 100
    assert np.array_equal(permutation_set(3, 100, 0, criterion), p)  # a function of (grid, K, seed, rule)
    assert not np.array_equal(permutation_set(3, 100, 1, criterion), p)
    rng = np.random.default_rng(0)
    rand = [hamming_matrix(np.array([rng.permutation(9) for _ in range(100)])) for _ in range(5)]
    d = hamming_matrix(p)
    off = ~np.eye(100, dtype=bool)
    print(f"\n3x3, 100 permutations, {criterion}: min / mean Hamming distance {d[off].min()} / {d[off].mean():.3f}; "
          f"random sets {[int(r[off].min()) for r in rand]} / {[round(float(r[off].mean()), 3) for r in rand]}")
    assert d[off].mean() > max(r[off].mean() for r in rand)
    if criterion == "min":
        assert d[off].min() >= 6  # the maximin selection reaches 6 of the possible 9
        # a smaller 2x2 subset is still chosen greedily: 10 of 24 with min distance 3
        sub = permutation_set(2, 10, 0, "min")
        assert sub.shape == (10, 4) and min_hamming(sub) == 3


def test_every_permutation_reassembles_the_image():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    tiles = extract_tiles(x, 2, 4)  # tile = cell: no gap
    assert torch.equal(tiles[:, 1], x[:, :, 0:4, 4:8])  # cells are row-major
    assert torch.equal(tiles[:, 2], x[:, :, 4:8, 0:4])
    for perm in permutation_set(2, 24):
        perms = torch.as_tensor(perm).repeat(2, 1)
        shuffled = shuffle_tiles(tiles, perms)
        for pos, cell in enumerate(perm):
            assert torch.equal(shuffled[:, pos], tiles[:, cell])  # position p holds cell perm[p]
        assert torch.equal(assemble_tiles(unshuffle_tiles(shuffled, perms), 2), x)
    for perm in permutation_set(3, 100):
        y = torch.arange(9 * 4, dtype=torch.float32).view(1, 1, 6, 6)
        perms = torch.as_tensor(perm)[None]
        assert torch.equal(assemble_tiles(unshuffle_tiles(shuffle_tiles(extract_tiles(y, 3, 2), perms), perms), 3), y)


def test_tile_offsets_and_origin():
    x = torch.arange(10 * 10, dtype=torch.float32).view(1, 1, 10, 10)
    off = torch.tensor([[[0, 0], [1, 0], [0, 1], [1, 1]]])
    t = extract_tiles(x, 2, 3, off, cell=4, origin=(1, 1))
    assert torch.equal(t[0, 0, 0], x[0, 0, 1:4, 1:4])
    assert torch.equal(t[0, 1, 0], x[0, 0, 2:5, 5:8])
    assert torch.equal(t[0, 2, 0], x[0, 0, 5:8, 2:5])
    assert torch.equal(t[0, 3, 0], x[0, 0, 6:9, 6:9])


def _info(channels=3, size=32):
    return DataInfo(channels, 10, (size, size), (0.5,) * channels, (0.25,) * channels)


def _objective(channels=3, size=32, **opts):
    torch.manual_seed(0)
    backbone = build(ArchSpec("resnet", {"depths": [1, 1], "width": 8}, 0), channels)
    return build_objective("jigsaw", backbone, _info(channels, size), JigsawOptions(**opts))


def test_labels_name_the_permutation_that_shuffled_the_tiles():
    obj = _objective().eval()
    assert (obj.cell, obj.tile, obj.num_perms) == (16, 12, 24)  # UnNAS on CIFAR: 12-pixel tiles of 16
    x = torch.randint(0, 256, (6, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    tiles, labels = obj.prepare(x, torch.Generator().manual_seed(1))
    assert tiles.shape == (6, 4, 3, 12, 12) and labels.shape == (6,)
    expected = standardize(extract_tiles(obj.normalize(x), 2, 12, cell=16), (2, 3, 4), 1e-3)  # centred tiles
    assert torch.allclose(unshuffle_tiles(tiles, obj.perms[labels]), expected)
    m, v = tiles.mean(dim=(2, 3, 4)), tiles.var(dim=(2, 3, 4), correction=0)
    assert torch.allclose(m, torch.zeros_like(m), atol=1e-5) and torch.allclose(v, torch.ones_like(v), atol=1e-2)
    # same generator state, same draw; no generator in evaluation: labels cycle through the set
    assert torch.equal(obj.prepare(x, torch.Generator().manual_seed(1))[1], labels)
    assert obj.prepare(x)[1].tolist() == [0, 1, 2, 3, 4, 5]


def test_training_jitter_and_grayscale():
    x = torch.randint(0, 256, (32, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    gray = _objective(gray_prob=1.0, flip=False).train()
    tiles, _ = gray.prepare(x, torch.Generator().manual_seed(0))
    assert torch.equal(tiles[:, :, 0], tiles[:, :, 1]) and torch.equal(tiles[:, :, 1], tiles[:, :, 2])
    colour = _objective(gray_prob=0.0, flip=False).train()
    t1, l1 = colour.prepare(x, torch.Generator().manual_seed(0))
    assert not torch.equal(t1[:, :, 0], t1[:, :, 1])
    # tiles come from random offsets within their cells: unshuffled tile (i, j) is one of the 5x5 windows
    cells = extract_tiles(colour.normalize(x), 2, 16)  # (B, 4, C, 16, 16)
    back = unshuffle_tiles(t1, colour.perms[l1])
    hits = torch.zeros(5, 5)
    for dy in range(5):
        for dx in range(5):
            w = standardize(cells[..., dy:dy + 12, dx:dx + 12], (2, 3, 4), 1e-3)
            hits[dy, dx] = (w - back).abs().amax(dim=(2, 3, 4)).lt(1e-4).sum()
    assert hits.sum() == 32 * 4  # every tile is exactly one window
    assert (hits > 0).sum() >= 20  # and the offsets vary
    frac = _objective(gray_prob=0.3, flip=False).train()
    t3, _ = frac.prepare(x.repeat(8, 1, 1, 1), torch.Generator().manual_seed(5))
    is_gray = (t3[:, :, 0] == t3[:, :, 1]).flatten(1).all(1).float().mean()
    assert 0.2 < float(is_gray) < 0.4


def test_tiny_grayscale_images_and_whole_image_features():
    obj = _objective(channels=1, size=16)
    assert (obj.cell, obj.tile) == (8, 6)
    x = torch.randint(0, 256, (4, 1, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    out = obj(x, generator=torch.Generator().manual_seed(0))
    assert int(out["n"]) == 4 and torch.isfinite(out["loss"])
    out["loss"].backward()
    assert obj.train_input(x, torch.Generator().manual_seed(0)).shape == (16, 1, 6, 6)
    e = obj.eval_input(x)
    assert e.shape == (4, 1, 16, 16)
    assert torch.allclose(e.mean(dim=(1, 2, 3)), torch.zeros(4), atol=1e-5)
    assert obj.eval().features(x).shape == (4, obj.backbone.num_features)
    assert obj.head.in_features == 4 * obj.backbone.num_features


def test_bad_options():
    with pytest.raises(UserError, match="jigsaw.grid"):
        _objective(grid=1)
    with pytest.raises(UserError, match="jigsaw.grid"):
        _objective(grid=0)
    with pytest.raises(UserError, match="jigsaw.grid"):
        _objective(size=8, grid=9)
    with pytest.raises(UserError, match="jigsaw.gray_prob"):
        _objective(gray_prob=1.5)
    with pytest.raises(UserError, match="jigsaw.tile_fraction"):
        _objective(tile_fraction=0.0)
    with pytest.raises(UserError, match="jigsaw.num_perms"):
        permutation_set(2, 1)
    assert isinstance(_objective(grid=3, num_perms=10), Jigsaw)
