import numpy as np
import pytest
import torch
from unnas.eval.knn import knn_accuracy, knn_predict


def test_four_points_by_hand():
    # two training points per class on the unit circle; cosine similarity decides
    train = np.array([[1, 0], [0.8, 0.6], [0, 1], [-0.6, 0.8]], np.float32)
    labels = np.array([0, 0, 1, 1])
    q = np.array([[0.6, 0.8]], np.float32)  # sims: 0.6, 0.96, 0.8, 0.28
    # k=1: nearest is point 1 (class 0)
    assert knn_predict(train, labels, q, k=1).tolist() == [0]
    # k=3, t=0.1: class 0 votes e^6 + e^9.6 ; class 1 votes e^8 -> class 0
    assert knn_predict(train, labels, q, k=3, t=0.1).tolist() == [0]
    # k=4, t=10 (nearly uniform weights): class 0 e^.06+e^.096 = 2.163 vs class 1 e^.08+e^.028 = 2.112
    assert knn_predict(train, labels, q, k=4, t=10).tolist() == [0]
    # a query closer to class 1's pair
    assert knn_predict(train, labels, np.array([[-0.2, 1.0]], np.float32), k=2).tolist() == [1]


def test_weighted_vote_can_beat_majority():
    train = np.array([[1, 0], [0, 1], [0.05, 1]], np.float32)
    labels = np.array([0, 1, 1])
    q = np.array([[1, 0.02]], np.float32)
    # k=3 majority would say class 1; with t=0.05 the single very close class-0 point wins
    assert knn_predict(train, labels, q, k=3, t=0.05).tolist() == [0]


def test_accuracy_scale_invariance_and_k_clip():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 5)).astype(np.float32)
    y = rng.integers(0, 3, 20)
    a = knn_accuracy(x, y, x, y, k=1)
    b = knn_accuracy(torch.from_numpy(x * 7.0), torch.from_numpy(y), torch.from_numpy(x * 0.1), torch.from_numpy(y), k=1)
    assert a == b == 1.0  # own point is the nearest neighbour; norms do not matter
    assert 0 <= knn_accuracy(x, y, x, y, k=500) <= 1  # k larger than the bank is clipped


def test_empty_bank_raises():
    with pytest.raises(ValueError):
        knn_predict(np.zeros((0, 3), np.float32), np.zeros(0, int), np.ones((1, 3), np.float32))
