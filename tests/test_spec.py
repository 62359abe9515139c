import torch
from torch import nn

from unnas.generators.complexity import complexity, count_flops, count_params
from unnas.spec import ArchSpec, Backbone, build


def test_arch_id_is_stable_and_canonical():
    a = ArchSpec("resnet", {"width": 8, "depths": [1, 2]}, 3)
    b = ArchSpec("resnet", {"depths": [1, 2], "width": 8}, 3)
    assert a.arch_id == b.arch_id and a == b and hash(a) == hash(b)
    assert a.to_json() == '{"generator":"resnet","params":{"depths":[1,2],"width":8},"seed":3}'
    assert ArchSpec.from_json(a.to_json()) == a
    assert ArchSpec("resnet", {"width": 8, "depths": [1, 2]}, 4).arch_id != a.arch_id


def test_conv_flops_and_params_by_hand():
    # 3x3 conv, 3 -> 8 channels, no bias, on 32x32 with padding 1: 8*32*32 outputs of 27 MACs each
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    assert count_params(conv) == 8 * 3 * 3 * 3
    assert count_flops(conv, (1, 3, 32, 32)) == 2 * 27 * 8 * 32 * 32
    # a conv/linear stack: conv 1->4 (3x3, stride 2) on 8x8 -> 4x4, flatten, linear 64 -> 10
    stack = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.Flatten(), nn.Linear(64, 10))
    assert count_flops(stack, (1, 1, 8, 8)) == 2 * (9 * 4 * 16) + 2 * 64 * 10
    assert count_params(stack) == (36 + 4) + (640 + 10)


class _OneConv(Backbone):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1)
        self.num_features = 2

    def forward_features(self, x):
        return self.conv(x)


def test_complexity_of_a_module_and_of_a_spec():
    c = complexity(_OneConv(), in_channels=1, image_size=4)
    assert c == {"params": 4, "flops": 2 * 2 * 16, "macs": 2 * 16}
    spec = ArchSpec("resnet", {"depths": [1], "width": 4}, 0)
    net = build(spec, 3)
    assert complexity(spec, 3, 8)["params"] == sum(p.numel() for p in net.parameters())


def test_backbone_contract_default_head():
    net = _OneConv()
    x = torch.randn(2, 1, 4, 4)
    assert net.forward_features(x).shape == (2, 2, 4, 4)
    assert torch.allclose(net.pooled(x), net.forward_features(x).mean(dim=(2, 3)))
    net.set_classifier(5)
    assert net(x).shape == (2, 5)
