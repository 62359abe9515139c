import math

import pytest
import torch
from unnas.eval.samplers import (
    class_balanced,
    class_probabilities,
    get_sampler,
    instance_balanced,
    power_sampler,
    progressively_balanced,
    square_root,
)

from unnas.errors import UserError

COUNTS = [1000, 100, 10, 1]


def lt_labels(counts=COUNTS, shuffle_seed=0):
    y = torch.cat([torch.full((n,), c, dtype=torch.long) for c, n in enumerate(counts)])
    return y[torch.randperm(len(y), generator=torch.Generator().manual_seed(shuffle_seed))]


def class_freq(sampler, labels, epochs, seed=0, num_classes=len(COUNTS)):
    g = torch.Generator().manual_seed(seed)
    idx = torch.cat([sampler(labels, e, g) for e in range(epochs)])
    return torch.bincount(labels[idx], minlength=num_classes).double() / idx.numel(), idx


def assert_close_binomial(freq, p, n, sigmas=5.0):
    """Each class frequency within ``sigmas`` binomial standard errors of its probability."""
    for f, q in zip(freq.tolist(), p):
        se = math.sqrt(q * (1 - q) / n)
        assert abs(f - q) <= sigmas * se + 1e-12, (f, q, se)


def test_instance_balanced_is_a_permutation_each_epoch():
    y = lt_labels()
    g = torch.Generator().manual_seed(3)
    a, b = instance_balanced(y, 0, g), instance_balanced(y, 1, g)
    assert torch.equal(torch.sort(a).values, torch.arange(len(y)))
    assert torch.equal(torch.sort(b).values, torch.arange(len(y)))
    assert not torch.equal(a, b)


def test_class_balanced_frequencies_converge_to_uniform():
    y = lt_labels()
    freq, idx = class_freq(class_balanced, y, epochs=20)
    assert idx.numel() == 20 * len(y)
    assert_close_binomial(freq, [0.25] * 4, idx.numel())
    # and not instance-balanced: the 1-image class is drawn ~1/4 of the time instead of 1/1111
    assert freq[3] > 0.2


def test_class_balanced_draws_images_uniformly_within_a_class():
    y = lt_labels()
    freq, idx = class_freq(class_balanced, y, epochs=20)
    drawn = idx[y[idx] == 1]  # class 1 has 100 images, each should get 1/100 of its draws
    per_image = torch.bincount(drawn, minlength=len(y))[y == 1].double()
    n = drawn.numel()
    # chi-square with 99 degrees of freedom: mean 99, sd 14; 99 + 6 sd as the bound
    chi2 = float(((per_image - n / 100) ** 2 / (n / 100)).sum())
    assert chi2 < 99 + 6 * math.sqrt(2 * 99)
    assert (per_image > 0).all()
    only = torch.nonzero(y == 3).flatten()
    assert set(idx[y[idx] == 3].tolist()) == set(only.tolist())


def test_square_root_frequencies_converge_to_sqrt_counts():
    y = lt_labels()
    freq, idx = class_freq(square_root, y, epochs=20)
    s = [math.sqrt(n) for n in COUNTS]
    p = [v / sum(s) for v in s]  # 31.62, 10, 3.162, 1 over 45.78
    assert p[0] == pytest.approx(0.6907, abs=1e-4)
    assert_close_binomial(freq, p, idx.numel())


def test_progressively_balanced_moves_from_instance_to_class():
    y = lt_labels()
    T = 11  # lambda = epoch / (T - 1): 0 in the first epoch, 1/2 in epoch 5, 1 in the last (epoch 10)
    s = progressively_balanced(T)
    n = sum(COUNTS)
    ib = [c / n for c in COUNTS]
    for epoch, expect in ((0, ib), (T - 1, [0.25] * 4), (5, [0.5 * a + 0.125 for a in ib])):
        g = torch.Generator().manual_seed(epoch)
        idx = torch.cat([s(y, epoch, g) for _ in range(20)])
        freq = torch.bincount(y[idx], minlength=4).double() / idx.numel()
        assert_close_binomial(freq, expect, idx.numel())


@pytest.mark.parametrize("T", [2, 3, 30])
def test_progressively_balanced_is_instance_balanced_first_and_class_balanced_last(T):
    # the authors' schedule: lambda = linspace(0, 1, T) over the T epochs, so the last epoch draws
    # exactly like the class-balanced sampler and the first like class frequencies n_j / N
    y = lt_labels()
    s = progressively_balanced(T)
    last = s(y, T - 1, torch.Generator().manual_seed(3))
    assert torch.equal(last, class_balanced(y, 0, torch.Generator().manual_seed(3)))
    first = s(y, 0, torch.Generator().manual_seed(3))
    assert torch.equal(first, power_sampler(1.0)(y, 0, torch.Generator().manual_seed(3)))


def test_class_probabilities_exact():
    assert class_probabilities(torch.tensor([4, 0, 16]), 0.5).tolist() == pytest.approx([2 / 6, 0, 4 / 6])
    assert class_probabilities(torch.tensor([4, 0, 16]), 0.0).tolist() == pytest.approx([0.5, 0, 0.5])


def test_missing_classes_are_never_drawn():
    y = torch.tensor([0] * 50 + [2] * 5)
    freq, idx = class_freq(class_balanced, y, epochs=40, num_classes=3)
    assert freq[1] == 0
    assert_close_binomial(freq[[0, 2]], [0.5, 0.5], idx.numel())


def test_samplers_are_reproducible_from_the_generator():
    y = lt_labels()
    for s in (instance_balanced, class_balanced, square_root, progressively_balanced(5)):
        a = s(y, 2, torch.Generator().manual_seed(7))
        b = s(y, 2, torch.Generator().manual_seed(7))
        c = s(y, 2, torch.Generator().manual_seed(8))
        assert torch.equal(a, b) and not torch.equal(a, c)
        assert a.dtype == torch.long and a.numel() == len(y)


def test_bad_input():
    with pytest.raises(UserError, match="sampler"):
        get_sampler("balanced")
    with pytest.raises(UserError):
        progressively_balanced(0)
    with pytest.raises(ValueError):
        class_balanced(torch.tensor([0.5, 1.0]), 0, None)
    with pytest.raises(ValueError):
        class_balanced(torch.tensor([], dtype=torch.long), 0, None)
    assert get_sampler("progressive", 7).total_epochs == 7
