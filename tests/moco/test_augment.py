import pytest
import torch
from torchvision.transforms.v2 import functional as TF
from unnas.moco import augment as A


def images(n=6, c=3, size=12, seed=0, dtype=torch.uint8):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, c, size, size), generator=g, dtype=torch.uint8)
    return x if dtype == torch.uint8 else x.float() / 255


def test_crop_of_scale_one_without_jitter_is_the_identity():
    for x in (images(), images(dtype=torch.float32), images(c=1, size=16)):
        y = A.random_resized_crop(x, (1.0, 1.0), (1.0, 1.0), torch.Generator().manual_seed(0))
        assert y.dtype == x.dtype
        if x.dtype == torch.uint8:
            assert torch.equal(y, x)
        else:
            torch.testing.assert_close(y, x, rtol=0, atol=1e-6)
    cfg = A.ViewConfig(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), jitter_p=0.0, gray_p=0.0, blur_p=0.0,
                       flip_p=0.0)
    x = images()
    torch.testing.assert_close(A.augment_view(x, cfg, torch.Generator().manual_seed(3)), x.float() / 255,
                               rtol=0, atol=1e-6)


def test_resized_crop_matches_torchvision_image_by_image():
    x = images(n=4, size=16, dtype=torch.float32)
    boxes = torch.tensor([[0, 0, 16, 16], [2, 3, 8, 10], [5, 0, 11, 7], [1, 1, 4, 4]])
    out = A.resized_crop(x, boxes, (16, 16))
    for i, (top, left, h, w) in enumerate(boxes.tolist()):
        ref = TF.resized_crop(x[i], top, left, h, w, [16, 16], antialias=True)
        torch.testing.assert_close(out[i], ref, rtol=0, atol=2e-5)


def test_crop_boxes_follow_the_scale_and_ratio_rule():
    boxes = A.sample_crop_boxes(2000, 32, 32, (0.2, 0.6), (3 / 4, 4 / 3), torch.Generator().manual_seed(0))
    top, left, h, w = boxes.unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 32).all() and (left + w <= 32).all()
    frac = (h * w).float() / 1024
    assert frac.min() > 0.17 and frac.max() < 0.65  # rounding of h and w moves the area a little
    assert 0.35 < frac.mean() < 0.45
    assert (top > 0).any() and (left > 0).any()
    # impossible request -> centre crop of the whole image
    fb = A.sample_crop_boxes(3, 10, 10, (2.0, 3.0), (1.0, 1.0), torch.Generator().manual_seed(0))
    assert fb.tolist() == [[0, 0, 10, 10]] * 3


@pytest.mark.parametrize("name,tv,factors", [
    ("adjust_brightness", TF.adjust_brightness, [0.6, 1.0, 1.4]),
    ("adjust_contrast", TF.adjust_contrast, [0.6, 1.0, 1.4]),
    ("adjust_saturation", TF.adjust_saturation, [0.6, 1.0, 1.4]),
    ("adjust_hue", TF.adjust_hue, [-0.1, 0.0, 0.4]),
])
def test_colour_ops_match_torchvision_per_sample(name, tv, factors):
    x = images(n=3, dtype=torch.float32)
    out = getattr(A, name)(x, torch.tensor(factors))
    for i, f in enumerate(factors):
        torch.testing.assert_close(out[i], tv(x[i], f), rtol=0, atol=2e-5)


def test_grayscale_and_blur_match_torchvision():
    x = images(n=3, dtype=torch.float32)
    torch.testing.assert_close(A.grayscale(x), TF.rgb_to_grayscale(x), rtol=0, atol=1e-6)
    sig = torch.tensor([0.3, 1.0, 2.0])
    out = A.gaussian_blur(x, sig, 5)
    for i in range(3):
        torch.testing.assert_close(out[i], TF.gaussian_blur(x[i], [5, 5], [float(sig[i])] * 2), rtol=0, atol=1e-5)


def test_hsv_round_trip():
    x = images(n=4, dtype=torch.float32)
    torch.testing.assert_close(A.hsv_to_rgb(A.rgb_to_hsv(x)), x, rtol=0, atol=1e-5)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_every_op_keeps_dtype_and_range(channels, dtype):
    x = images(c=channels, dtype=dtype)
    g = torch.Generator().manual_seed(0)
    top = 255 if dtype == torch.uint8 else 1.0
    ops = [lambda v: A.random_resized_crop(v, (0.1, 1.0), generator=g),
           lambda v: A.adjust_brightness(v, 1.9), lambda v: A.adjust_contrast(v, 1.9),
           lambda v: A.adjust_saturation(v, 1.9), lambda v: A.adjust_hue(v, 0.3),
           lambda v: A.color_jitter(v, 0.9, 0.9, 0.9, 0.5, 1.0, g), lambda v: A.random_grayscale(v, 1.0, g),
           lambda v: A.gaussian_blur(v, 1.5, 3), lambda v: A.random_gaussian_blur(v, 1.0, (0.5, 2.0), 5, g)]
    for op in ops:
        y = op(x)
        assert y.dtype == dtype and y.shape == x.shape
        assert y.min() >= 0 and y.max() <= top


def test_one_channel_images_only_get_brightness_and_contrast():
    x = images(c=1)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(A.color_jitter(x, 0.0, 0.0, 0.4, 0.5, 1.0, g), x)
    assert torch.equal(A.random_grayscale(x, 1.0, g), x)
    assert not torch.equal(A.color_jitter(x, 0.4, 0.4, 0.0, 0.0, 1.0, g), x)


def test_jitter_uses_the_drawn_factors():
    x = images(dtype=torch.float32)
    g = torch.Generator().manual_seed(5)
    u = torch.rand(6, 4, generator=torch.Generator().manual_seed(5))
    y = A.color_jitter(x, 0.4, 0.0, 0.0, 0.0, 1.0, g)  # brightness only, always applied
    torch.testing.assert_close(y, A.adjust_brightness(x, 0.6 + 0.8 * u[:, 0]))
    assert torch.equal(A.color_jitter(x, 0.4, 0.4, 0.4, 0.1, 0.0, g), x)


def test_same_seed_same_views_and_two_views_differ():
    x = images(n=8, size=16)
    cfg = A.ViewConfig()
    a1, a2 = A.two_views(x, cfg, torch.Generator().manual_seed(7))
    b1, b2 = A.two_views(x, cfg, torch.Generator().manual_seed(7))
    assert torch.equal(a1, b1) and torch.equal(a2, b2)
    c1, _ = A.two_views(x, cfg, torch.Generator().manual_seed(8))
    assert not torch.equal(a1, c1)
    per_image = (a1 - a2).abs().flatten(1).amax(1)
    assert (per_image > 0.05).all()
    assert a1.dtype == torch.float32 and a1.min() >= 0 and a1.max() <= 1


def test_scale_aware_defaults():
    assert [A.blur_kernel_size(s) for s in (224, 64, 32, 16)] == [23, 7, 3, 3]
    cfg = A.ViewConfig()
    sigma, k = cfg.blur_for(32)
    assert k == 3 and sigma == pytest.approx((0.1 * 32 / 224, 2.0 * 32 / 224))
    assert A.scale_for_size(0.08, 16) == 0.25
    assert A.scale_for_size(0.08, 32) == 0.08
    assert A.scale_for_size(0.2, 224) == 0.2
