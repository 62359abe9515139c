"""Rotation: exact quarter turns, labels, the 4x batch and accuracy over all four rotations."""

from __future__ import annotations

import pytest
import torch
from unnas.pretext.rotation import Rotation, rotate_batch

from unnas.errors import UserError
from unnas.objectives.base import DataInfo, build_objective
from unnas.spec import ArchSpec, build


def test_quarter_turn_by_hand():
    x = torch.tensor([[1, 2], [3, 4]]).view(1, 1, 2, 2)
    out, labels = rotate_batch(x)
    assert out[1, 0].tolist() == [[2, 4], [1, 3]]  # 90 degrees counter-clockwise
    assert out[2, 0].tolist() == [[4, 3], [2, 1]]
    assert out[3, 0].tolist() == [[3, 1], [4, 2]]
    assert labels.tolist() == [0, 1, 2, 3]


def test_rotating_back_is_the_identity():
    x = torch.randn(5, 3, 7, 7, generator=torch.Generator().manual_seed(0))
    out, labels = rotate_batch(x)
    assert out.shape == (20, 3, 7, 7)
    for k in range(4):
        assert torch.equal(torch.rot90(out[5 * k:5 * (k + 1)], -k, dims=(2, 3)), x)
        assert labels[5 * k:5 * (k + 1)].tolist() == [k] * 5
    # three more quarter turns of the 90-degree copy give the original back
    assert torch.equal(rotate_batch(out[5:10])[0][15:20], x)


def _objective(size=16):
    torch.manual_seed(0)
    backbone = build(ArchSpec("resnet", {"depths": [1, 1], "width": 8}, 0), 1)
    return build_objective("rotation", backbone, DataInfo(1, 10, (size, size), (0.5,), (0.25,)))


def test_accuracy_is_over_all_four_rotations():
    obj = _objective().eval()
    with torch.no_grad():
        obj.head.weight.zero_()
        obj.head.bias.copy_(torch.tensor([0.0, 0.0, 1.0, 0.0]))  # always answers "180 degrees"
    x = torch.randint(0, 256, (6, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    out = obj(x)
    assert int(out["n"]) == 24
    assert float(out["acc"]) == pytest.approx(0.25)
    inp, target = obj.prepare(x)
    assert torch.equal(inp[:6], obj.eval_input(x)) and torch.equal(inp[12:18], obj.eval_input(x).rot90(2, (2, 3)))
    assert target.tolist() == [0] * 6 + [1] * 6 + [2] * 6 + [3] * 6


def test_training_batch_is_seeded_and_four_times_larger():
    obj = _objective().train()
    x = torch.randint(0, 256, (6, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    a = obj.train_input(x, torch.Generator().manual_seed(1))
    b = obj.train_input(x, torch.Generator().manual_seed(1))
    assert a.shape == (24, 1, 16, 16) and torch.equal(a, b)
    assert torch.equal(a[6:12], a[:6].rot90(1, (2, 3)))


def test_refuses_non_square_images():
    with pytest.raises(UserError, match="16x12"):
        Rotation.check_data(DataInfo(3, 10, (16, 12), (0.5,) * 3, (0.25,) * 3))

