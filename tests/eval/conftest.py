"""Tiny networks and a label-free test objective whose proxies can be written out by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from unnas.eval.proxies import ProxyInput

from unnas.objectives import DataInfo
from unnas.objectives.base import Objective
from unnas.spec import Backbone


class Flat(Backbone):
    """Flattens a (B, 1, 1, d) image and applies ``layers``: features (B, D), no spatial map."""

    has_spatial = False

    def __init__(self, *layers: nn.Module, num_features: int):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), *layers)
        self.num_features = num_features

    def forward_features(self, x):
        return self.body(x)


class Quadratic(Objective):
    """Label-free test objective: the input is the raw pixel value, ``loss = 0.5 mean_b ||f(x_b)||^2``,
    so every gradient has a closed form (``dL/dW = W S`` for one linear layer, ``S = mean x x^T``)."""

    name = "quadratic"

    def normalize(self, images):
        return images.float()

    def forward(self, images, labels=None, generator=None):
        assert labels is None, "a label-free objective was given labels"
        f = self.backbone.pooled(self.eval_input(images))
        return {"loss": 0.5 * f.pow(2).sum(1).mean(), "acc": torch.zeros(()), "n": torch.tensor(len(images))}


def linear(weight, bias=None) -> nn.Linear:
    w = torch.tensor(weight, dtype=torch.float32)
    layer = nn.Linear(w.shape[1], w.shape[0], bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(w)
        if bias is not None:
            layer.bias.copy_(torch.tensor(bias, dtype=torch.float32))
    return layer


def pixels(rows) -> torch.Tensor:
    """uint8 images (B, 1, 1, d) holding the given pixel values."""
    t = torch.tensor(rows, dtype=torch.uint8)
    return t.view(t.shape[0], 1, 1, t.shape[1])


def tiny_input(backbone: Backbone, rows, seed: int = 0) -> ProxyInput:
    d = len(rows[0])
    info = DataInfo(channels=1, num_classes=2, image_size=(1, d), mean=(0.0,), std=(1.0,))
    return ProxyInput(Quadratic(backbone, info), pixels(rows), torch.Generator().manual_seed(seed))


@pytest.fixture
def flat():
    return Flat


@pytest.fixture
def make_linear():
    return linear


@pytest.fixture
def make_input():
    return tiny_input
