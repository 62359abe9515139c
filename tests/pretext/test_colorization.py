"""sRGB -> Lab against published values, the ab gamut checked through the inverse transform, and
the colorization objective's input, targets and per-pixel accuracy."""

from __future__ import annotations

import pytest
import torch
from unnas.pretext.color import GRID, ab_gamut, lab_to_srgb, srgb_to_lab, uint8_to_lab
from unnas.pretext.colorization import Colorization, ColorizationOptions

from unnas.errors import UserError
from unnas.objectives.base import DataInfo, build_objective
from unnas.spec import ArchSpec, build

# CIE Lab (D65) of the sRGB primaries, secondaries, white and black: the values tabulated by
# scikit-image's rgb2lab / Bruce Lindbloom's calculator, to two decimals.
KNOWN = {
    (1, 0, 0): (53.24, 80.09, 67.20),
    (0, 1, 0): (87.73, -86.18, 83.18),
    (0, 0, 1): (32.30, 79.19, -107.86),
    (1, 1, 0): (97.14, -21.55, 94.48),
    (0, 1, 1): (91.11, -48.09, -14.13),
    (1, 0, 1): (60.32, 98.23, -60.82),
    (1, 1, 1): (100.0, 0.0, 0.0),
    (0, 0, 0): (0.0, 0.0, 0.0),
}


def _pixels(colors) -> torch.Tensor:
    """A list of RGB triples -> a (1, 3, 1, n) float64 image."""
    return torch.tensor(colors, dtype=torch.float64).T.reshape(1, 3, 1, -1)


def test_lab_of_known_colors():
    lab = srgb_to_lab(_pixels(list(KNOWN))).reshape(3, -1).T
    want = torch.tensor(list(KNOWN.values()), dtype=torch.float64)
    assert torch.allclose(lab, want, atol=0.05), (lab - want).abs().max()


def test_lab_round_trip_and_uint8_path():
    x = torch.randint(0, 256, (4, 3, 8, 8), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    rgb = x.double() / 255.0
    lab = srgb_to_lab(rgb)
    assert torch.allclose(lab_to_srgb(lab), rgb, atol=1e-9)
    assert torch.equal(uint8_to_lab(x, torch.float64), lab)
    assert torch.allclose(uint8_to_lab(x), lab.float(), atol=1e-3)
    assert lab[:, 0].min() >= 0 and lab[:, 0].max() <= 100.0 + 1e-9


def _sRGB_point_in_bins(centers: torch.Tensor, half: float, n_ab: int = 11, n_l: int = 101) -> torch.Tensor:
    """For each bin, is there a Lab point with ab within ``half`` of the centre (on a grid) and some
    L in [0, 100] that maps back inside the sRGB cube? Uses only the inverse transform."""
    off = torch.linspace(-half, half, n_ab, dtype=torch.float64)
    da, db = torch.meshgrid(off, off, indexing="ij")
    a = centers[:, 0, None] + da.reshape(1, -1)  # (Q, S)
    b = centers[:, 1, None] + db.reshape(1, -1)
    L = torch.linspace(0, 100, n_l, dtype=torch.float64).view(1, 1, -1).expand(*a.shape, n_l)
    lab = torch.stack([L, a[..., None].expand_as(L), b[..., None].expand_as(L)], dim=1)  # (Q, 3, S, n_l)
    rgb = lab_to_srgb(lab)
    return ((rgb >= 0) & (rgb <= 1)).all(dim=1).flatten(1).any(dim=1)


def test_hit_gamut_is_exactly_the_srgb_bins():
    g = ab_gamut("hit")
    q = g.num_bins
    print(f"\nab gamut at grid {GRID:g}: {q} bins hit by the 256^3 8-bit sRGB colours")
    assert q == 261
    # extremes of a and b are those of magenta / green and yellow / blue (values above)
    assert g.centers[:, 0].min() == -90 and g.centers[:, 0].max() == 100
    assert g.centers[:, 1].min() == -110 and g.centers[:, 1].max() == 90
    assert len({tuple(c) for c in g.centers.tolist()}) == q
    # every bin holds an sRGB colour (found through lab_to_srgb, independently of the forward pass)
    assert _sRGB_point_in_bins(g.centers, half=GRID / 2 - 0.01).all()
    # ... and no other bin of the surrounding grid does (away from its edges)
    axis = torch.arange(g.lo, g.hi + 1, dtype=torch.float64) * GRID
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), dim=-1).reshape(-1, 2)
    inside = {tuple(c) for c in g.centers.tolist()}
    others = torch.stack([c for c in grid if tuple(c.tolist()) not in inside])
    assert not _sRGB_point_in_bins(others, half=GRID / 2 - 0.1, n_l=51).any()


def test_default_gamut_centres_map_back_inside_srgb():
    g, hit = ab_gamut(), ab_gamut("hit")
    print(f"\nab gamut (default, centres in sRGB) at grid {GRID:g}: {g.num_bins} bins")
    assert g.kind == "centre" and g.num_bins == 229
    inside = {tuple(c) for c in g.centers.tolist()}
    assert inside <= {tuple(c) for c in hit.centers.tolist()}
    # every centre is an sRGB colour: at the L where lab_to_srgb lands inside the cube, the forward
    # transform of that colour gives the centre back
    L = torch.linspace(0, 100, 10001, dtype=torch.float64)
    for a, b in g.centers.tolist():
        rgb = lab_to_srgb(torch.stack([L, torch.full_like(L, a), torch.full_like(L, b)]).view(1, 3, 1, -1))
        ok = ((rgb >= 0) & (rgb <= 1)).all(dim=1).flatten()
        assert ok.any(), (a, b)
        colour = rgb[..., ok.nonzero()[len(ok.nonzero()) // 2]]  # a colour well inside the L window
        back = srgb_to_lab(colour).flatten()
        assert torch.allclose(back[1:], torch.tensor([a, b], dtype=torch.float64), atol=1e-6)
    # the hit bins left out have no sRGB colour at their centre for any L, and sit on the edge
    dropped = torch.tensor([c for c in hit.centers.tolist() if tuple(c) not in inside], dtype=torch.float64)
    assert len(dropped) == 32
    assert not _sRGB_point_in_bins(dropped, half=0.0, n_ab=1, n_l=20001).any()
    assert (dropped.abs() > 30).any(dim=1).all()


def test_quantize_known_colors():
    x = torch.tensor([[255, 0, 0], [128, 128, 128], [0, 0, 255], [0, 255, 0]], dtype=torch.uint8)
    ab = uint8_to_lab(x.T.reshape(1, 3, 1, 4), torch.float64)[:, 1:]
    hit = ab_gamut("hit")
    assert hit.centers[hit.quantize(ab).reshape(-1)].tolist() == [[80.0, 70.0], [0.0, 0.0], [80.0, -110.0],
                                                                   [-90.0, 80.0]]
    # red's, blue's and green's own bins are edge bins: the default gamut gives the nearest centre
    g = ab_gamut()
    assert g.centers[g.quantize(ab).reshape(-1)].tolist() == [[80.0, 60.0], [0.0, 0.0], [80.0, -100.0],
                                                              [-80.0, 80.0]]
    # any colour: its bin centre is within half a bin of its ab value
    y = torch.randint(0, 256, (8, 3, 16, 16), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    ab = uint8_to_lab(y, torch.float64)[:, 1:]
    c = hit.centers[hit.quantize(ab)].permute(0, 3, 1, 2)
    assert (c - ab).abs().max() <= GRID / 2 + 1e-6


def test_unknown_gamut_is_refused():
    with pytest.raises(UserError, match="colorization.gamut"):
        Colorization.check_data(_info(3), ColorizationOptions(gamut="zhang"))
    with pytest.raises(ValueError):
        ab_gamut("zhang")


def _info(channels=3, size=16):
    return DataInfo(channels, 10, (size, size), (0.5,) * channels, (0.25,) * channels)


def _objective(size=16):
    torch.manual_seed(0)
    backbone = build(ArchSpec("resnet", {"depths": [1, 1], "width": 8}, 0), Colorization.input_channels(3))
    return build_objective("colorization", backbone, _info(3, size))


def test_refuses_grayscale_data():
    with pytest.raises(UserError, match="1 channel"):
        Colorization.check_data(_info(1))
    with pytest.raises(UserError):
        Colorization(build(ArchSpec("resnet", {"depths": [1]}, 0), 1), _info(1))
    assert Colorization.input_channels(3) == 1


def test_input_is_normalized_lightness_and_targets_are_bins():
    obj = _objective().eval()
    x = torch.randint(0, 256, (2, 3, 16, 16), generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
    inp, target = obj.prepare(x)
    lab = uint8_to_lab(x)
    assert inp.shape == (2, 1, 16, 16) and target.shape == (2, 16, 16)
    assert torch.allclose(inp, (lab[:, :1] / 100 - 0.5) / 0.25)
    assert torch.equal(obj.eval_input(x), inp)
    assert torch.equal(target, ab_gamut().quantize(lab[:, 1:]))
    assert obj.features(x).shape == (2, obj.backbone.num_features)


def test_flip_moves_input_and_target_together():
    obj = _objective().train()
    x = torch.randint(0, 256, (64, 3, 8, 8), generator=torch.Generator().manual_seed(3), dtype=torch.uint8)
    inp, target = obj.prepare(x, torch.Generator().manual_seed(4))
    ref_in, ref_t = _objective().eval().prepare(x)
    flipped = (inp != ref_in).flatten(1).any(1)
    assert 0 < int(flipped.sum()) < 64
    assert torch.equal(inp[flipped], ref_in[flipped].flip(-1))
    assert torch.equal(target[flipped], ref_t[flipped].flip(-1))
    assert torch.equal(target[~flipped], ref_t[~flipped])
    off = build_objective("colorization", obj.backbone, _info(3), ColorizationOptions(flip=False)).train()
    assert torch.equal(off.prepare(x, torch.Generator().manual_seed(4))[0], ref_in)


def test_accuracy_is_per_pixel():
    obj = _objective(size=8).eval()
    x = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    x[:, 0] = 255  # red everywhere ...
    x[0, :, :, :4] = 128  # ... except the left half of image 0, which is grey
    grey = int(ab_gamut().quantize(torch.zeros(1, 2, 1, 1, dtype=torch.float64)))
    with torch.no_grad():
        obj.head.weight.zero_()
        obj.head.bias.zero_()
        obj.head.bias[grey] = 1.0  # always predict grey
    out = obj(x)
    assert int(out["n"]) == 2 * 8 * 8
    assert float(out["acc"]) == pytest.approx(32 / 128)
    assert out["loss"].shape == ()


@pytest.mark.parametrize("kind", ["centre", "hit"])
def test_bins_agree_with_nearest_centre_search(kind):
    """Our cell lookup equals a nearest-neighbour search over the bin centres (how UnNAS encodes)."""
    from sklearn.neighbors import NearestNeighbors

    g = ab_gamut(kind)
    gen = torch.Generator().manual_seed(5)
    x = torch.randint(0, 256, (16, 3, 16, 16), generator=gen, dtype=torch.uint8)
    x[8:, 0] = 255 * torch.randint(0, 2, (8, 16, 16), generator=gen, dtype=torch.uint8)  # saturated colours,
    x[12:, 1] = 255 - x[12:, 0]  # many on the gamut's edge
    ab = uint8_to_lab(x, torch.float64)[:, 1:]
    ab[0, :, 0, :4] = torch.tensor([[150.0, -140.0, 3.0, 97.0], [-150.0, 0.0, 123.0, -115.0]])  # off the grid
    own = (torch.round(ab / GRID) * GRID).permute(0, 2, 3, 1).reshape(-1, 1, 2)
    own_is_class = (own == g.centers.view(1, -1, 2)).all(dim=-1).any(dim=1)
    assert (~own_is_class).sum() >= (4 if kind == "hit" else 20)  # the fallback search is exercised
    nn_idx = NearestNeighbors(n_neighbors=1).fit(g.centers.numpy()).kneighbors(
        ab.permute(0, 2, 3, 1).reshape(-1, 2).numpy(), return_distance=False)
    assert torch.equal(g.quantize(ab).reshape(-1), torch.from_numpy(nn_idx[:, 0]))
