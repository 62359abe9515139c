import math

import pytest
import torch
from unnas.moco.loss import info_nce, info_nce_logits, instance_accuracy


def test_info_nce_equals_hand_computed_cross_entropy():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    k = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    neg = torch.tensor([[1.0, 0.0], [0.0, -1.0], [0.8, 0.6]])
    t = 0.5
    loss, logits = info_nce(q, k, neg, t)
    # row 0: q.k = 0.6, q.n = [1, 0, 0.8]; row 1: q.k = 1, q.n = [0, -1, 0.6]
    expected_logits = torch.tensor([[0.6, 1.0, 0.0, 0.8], [1.0, 0.0, -1.0, 0.6]]) / t
    torch.testing.assert_close(logits, expected_logits)
    row0 = -1.2 + math.log(math.exp(1.2) + math.exp(2.0) + math.exp(0.0) + math.exp(1.6))
    row1 = -2.0 + math.log(math.exp(2.0) + math.exp(0.0) + math.exp(-2.0) + math.exp(1.2))
    assert loss.item() == pytest.approx((row0 + row1) / 2, rel=1e-6)
    assert instance_accuracy(logits).item() == 0.5  # row 0's positive loses to the first negative


def test_no_negatives_gives_zero_loss_and_perfect_accuracy():
    q = torch.nn.functional.normalize(torch.randn(4, 3, generator=torch.Generator().manual_seed(0)), dim=1)
    loss, logits = info_nce(q, q, torch.zeros(0, 3), 0.2)
    assert logits.shape == (4, 1) and loss.item() == 0.0 and instance_accuracy(logits).item() == 1.0


def test_gradient_reaches_queries_only():
    q = torch.tensor([[1.0, 0.0]], requires_grad=True)
    k = torch.tensor([[0.0, 1.0]], requires_grad=True)
    neg = torch.tensor([[1.0, 0.0]], requires_grad=True)
    loss, _ = info_nce(q, k, neg, 1.0)
    loss.backward()
    assert q.grad is not None and k.grad is None and neg.grad is None
    # d/dq of -log softmax_0 with logits [q.k, q.n]: -k + sum_j p_j v_j; p = softmax([0, 1])
    p = torch.softmax(torch.tensor([0.0, 1.0]), 0)
    torch.testing.assert_close(q.grad[0], -torch.tensor([0.0, 1.0]) + p[0] * torch.tensor([0.0, 1.0])
                               + p[1] * torch.tensor([1.0, 0.0]))


def test_bad_temperature():
    with pytest.raises(ValueError):
        info_nce_logits(torch.ones(1, 2), torch.ones(1, 2), torch.ones(1, 2), 0.0)
