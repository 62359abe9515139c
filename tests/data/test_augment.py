import torch

from unnas.data.augment import random_crop, random_flip, standard_augment, to_float


def _batch(b=6, c=2, h=5, w=5):
    return torch.arange(b * c * h * w, dtype=torch.int32).reshape(b, c, h, w).to(torch.uint8)


def test_crop_matches_per_sample_slicing():
    x = _batch()
    g = torch.Generator().manual_seed(3)
    out = random_crop(x, 2, g)
    g = torch.Generator().manual_seed(3)
    oy = torch.randint(0, 5, (6,), generator=g)
    ox = torch.randint(0, 5, (6,), generator=g)
    xp = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(6):
        assert torch.equal(out[i], xp[i, :, oy[i]:oy[i] + 5, ox[i]:ox[i] + 5])
    assert out.dtype == torch.uint8 and out.shape == x.shape


def test_flip_per_sample_and_seeded():
    x = _batch()
    out = random_flip(x, torch.Generator().manual_seed(0), p=0.5)
    mask = torch.rand(6, generator=torch.Generator().manual_seed(0)) < 0.5
    for i in range(6):
        assert torch.equal(out[i], x[i].flip(-1) if mask[i] else x[i])
    assert torch.equal(random_flip(x, None, p=0.0), x)
    assert torch.equal(random_flip(x, None, p=1.0), x.flip(-1))


def test_same_seed_same_augmentation():
    x = _batch()
    a = standard_augment(x, torch.Generator().manual_seed(7))
    b = standard_augment(x, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_to_float_normalization():
    x = torch.full((1, 2, 1, 1), 255, dtype=torch.uint8)
    out = to_float(x, (0.5, 0.0), (0.5, 2.0))
    assert torch.allclose(out.flatten(), torch.tensor([1.0, 0.5]))


def test_padding_with_the_mean_colour():
    from unnas.data.augment import mean_fill, pad

    x = torch.full((2, 3, 2, 2), 9, dtype=torch.uint8)
    fill = mean_fill((0.5, 0.0, 1.0))
    assert fill == (128, 0, 255)
    p = pad(x, 1, fill)
    assert p.shape == (2, 3, 4, 4)
    assert p[:, :, 1:3, 1:3].eq(9).all()
    border = torch.ones(4, 4, dtype=torch.bool)
    border[1:3, 1:3] = False
    for c, v in enumerate(fill):
        assert p[:, c][:, border].eq(v).all()
    assert torch.equal(pad(x, 1, None), torch.nn.functional.pad(x, (1, 1, 1, 1)))
    # every crop of a constant image padded with the mean holds only the image and mean values
    crops = standard_augment(x[:1].expand(64, 3, 2, 2), torch.Generator().manual_seed(0), padding=1, fill=fill)
    for c, v in enumerate(fill):
        assert set(crops[:, c].unique().tolist()) == {9, v}
    # normalizing the fill gives (about) zero: padding with the mean is zero-padding after normalization
    z = to_float(torch.tensor(fill, dtype=torch.uint8).view(1, 3, 1, 1), (0.5, 0.0, 1.0), (0.25, 0.25, 0.25))
    assert z.abs().max() < 0.01
