import pytest
import torch
from torch import nn
from unnas.moco.encoder import ema_update, embed, momentum_copy, projection_head

from unnas.generators.resnet import ResNet


def test_ema_on_a_one_parameter_model():
    q = nn.Linear(1, 1, bias=False)
    k = momentum_copy(q)
    with torch.no_grad():
        q.weight.fill_(3.0)
        k.weight.fill_(1.0)
    ema_update(k, q, 0.75)  # 0.75 * 1 + 0.25 * 3
    assert k.weight.item() == 1.5
    ema_update(k, q, 0.75)  # 0.75 * 1.5 + 0.25 * 3
    assert k.weight.item() == 1.875
    ema_update(k, q, 0.0)
    assert k.weight.item() == 3.0
    assert q.weight.item() == 3.0
    with pytest.raises(ValueError):
        ema_update(k, q, 1.5)


def test_momentum_copy_starts_equal_and_takes_no_gradient():
    torch.manual_seed(0)
    net = nn.ModuleDict({"backbone": ResNet([1], 4, 1, None), "head": projection_head(4, 3, 5)})
    twin = momentum_copy(net)
    for a, b in zip(net.parameters(), twin.parameters()):
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()
        assert a.requires_grad and not b.requires_grad
    x = torch.randn(4, 1, 6, 6)
    loss = embed(net["backbone"], net["head"], x).sum() + embed(twin["backbone"], twin["head"], x).sum()
    loss.backward()
    assert all(p.grad is not None for p in net.parameters())
    assert all(p.grad is None for p in twin.parameters())


def test_heads_and_normalized_embedding():
    assert isinstance(projection_head(8, 4), nn.Linear)
    mlp = projection_head(4, 3, 16)
    assert [type(m) for m in mlp] == [nn.Linear, nn.ReLU, nn.Linear] and mlp[0].out_features == 16
    torch.manual_seed(0)
    z = embed(ResNet([1], 4, 1, None), mlp, torch.randn(3, 1, 5, 5))
    torch.testing.assert_close(z.norm(dim=1), torch.ones(3))


def test_ema_rejects_mismatched_encoders():
    with pytest.raises(ValueError):
        ema_update(nn.Linear(2, 2), nn.Linear(2, 3), 0.9)
