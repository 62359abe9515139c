"""View retrieval: hand-computed cases."""

import math

import pytest
import torch
from unnas.eval.retrieval import view_retrieval_accuracy


def test_hand_example():
    f1 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    # query 0 closest to gallery 0; query 1 closest to gallery 2 (cos 0.98 vs 0.2); query 2 closest to 2
    f2 = torch.tensor([[1.0, 0.1], [0.8, 1.0], [1.0, 1.0]])
    assert view_retrieval_accuracy(f1, f2) == pytest.approx(2 / 3)


def test_scale_invariance_chunks_and_collapse():
    g = torch.Generator().manual_seed(0)
    f1 = torch.randn(50, 8, generator=g)
    assert view_retrieval_accuracy(f1, 3 * f1) == 1.0
    assert view_retrieval_accuracy(f1, f1, chunk=7) == 1.0
    assert view_retrieval_accuracy(torch.ones(10, 4), torch.ones(10, 4)) == pytest.approx(0.1)  # ties -> index 0
    assert math.isnan(view_retrieval_accuracy(torch.zeros(0, 3), torch.zeros(0, 3)))
    with pytest.raises(ValueError):
        view_retrieval_accuracy(torch.zeros(3, 2), torch.zeros(2, 2))
