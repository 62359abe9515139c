"""Label-free scores of trained networks (unnas.eval.trained): hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
from unnas.eval.trained import TrainedInput, alignment, alpha_req, oriented, rankme, sotl_e, trained_scores, uniformity

from unnas.registry import TRAINED_SCORES


def test_rank2_embedding_with_equal_singular_values_has_rankme_2():
    z = torch.zeros(6, 4)
    z[0, 0] = z[1, 0] = 1.0  # column 0: norm sqrt(2)
    z[2, 1] = z[3, 1] = 1.0  # column 1: norm sqrt(2), orthogonal
    assert rankme(z) == pytest.approx(2.0, abs=1e-5)


def test_rankme_of_unequal_singular_values_is_the_exp_entropy():
    z = torch.diag(torch.tensor([3.0, 1.0]))  # p = (3/4, 1/4)
    want = math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))  # 1.7548
    assert rankme(z, eps=0.0) == pytest.approx(want, rel=1e-9)
    assert 1.0 < rankme(z) < 2.0
    assert rankme(torch.ones(5, 3)) == pytest.approx(1.0, abs=1e-5)  # rank one
    assert rankme(torch.zeros(5, 3)) == 0.0


def test_alpha_req_recovers_a_power_law_eigenspectrum():
    # orthogonal embedding whose covariance eigenvalues are c * k^-1.5
    n, d = 64, 8
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    q = q[:, 1:d + 1]  # orthonormal, orthogonal to the first column
    q = q - q.mean(dim=0, keepdim=True)
    q, _ = torch.linalg.qr(q)  # orthonormal columns with zero mean
    k = torch.arange(1, d + 1, dtype=torch.float64)
    z = q * torch.sqrt(k ** -1.5)
    assert alpha_req(z) == pytest.approx(1.5, abs=1e-6)
    assert oriented("alpha_req", 1.5) == -0.5 and oriented("alpha_req", 1.0) == 0.0
    assert math.isnan(alpha_req(torch.ones(4, 3)))  # a single point: no spectrum


def test_alignment_and_uniformity_on_a_toy_set():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    # identical directions: perfect alignment; orthogonal unit vectors: squared distance 2
    assert alignment(a, 3 * a) == 0.0
    assert alignment(a, torch.tensor([[0.0, 1.0], [5.0, 0.0]])) == pytest.approx(2.0)
    # two antipodal points: one pair at squared distance 4 -> log exp(-2*4) = -8
    assert uniformity(torch.tensor([[1.0, 0.0], [-3.0, 0.0]])) == pytest.approx(-8.0)
    # four points on the circle at 90 degrees: 4 pairs at d^2 = 2, 2 pairs at d^2 = 4
    sq = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    want = math.log((4 * math.exp(-4) + 2 * math.exp(-8)) / 6)
    assert uniformity(sq) == pytest.approx(want, rel=1e-9)
    assert math.isnan(uniformity(sq[:1]))


def test_sotl_e_sums_the_last_epochs_step_losses():
    hist = [[3.0, 2.5, 2.0], [1.5, 1.25, 1.0]]
    assert sotl_e(hist) == pytest.approx(3.75)
    assert sotl_e(hist, epochs=2) == pytest.approx(11.25)
    assert math.isnan(sotl_e([]))


def test_every_registered_score_is_computed_and_oriented():
    g = torch.Generator().manual_seed(0)
    f = torch.randn(32, 6, generator=g)
    x = TrainedInput(f, (f, f + 0.1 * torch.randn(32, 6, generator=g)), 1.25, [[2.0, 1.0]])
    got = trained_scores(x)
    assert set(got) == set(TRAINED_SCORES.names()) >= {"rankme", "alpha_req", "alignment", "uniformity",
                                                        "heldout_loss", "sotl_e"}
    assert got["heldout_loss"] == 1.25 and got["sotl_e"] == 3.0
    assert oriented("sotl_e", 3.0) == -3.0 and oriented("rankme", got["rankme"]) == got["rankme"]
    assert math.isnan(oriented("rankme", None)) and math.isnan(oriented("alignment", math.nan))
