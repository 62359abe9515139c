"""Any timm model as a fixed candidate: generator ``timm`` with parameter ``model``.

``ArchSpec("timm", {"model": "resnet18"})`` (or the name form ``timm:resnet18``, see
:func:`unnas.population.parse_generator`) builds ``timm.create_model(model, pretrained=False,
num_classes=0, in_chans=in_channels)``: never a download, weights from torch's RNG.

* ``forward_features`` is timm's ``forward_features``; a model whose features are a 4-D map
  ``(B, C, h, w)`` keeps it (``has_spatial``); a token model (ViT) returns its pooled ``(B, D)``.
* Pooled features are timm's ``forward_head(..., pre_logits=True)`` (its own global pooling
  and pre-logits layers), so ``num_features`` is the width the classifier would see.
* ``stem="small"`` adapts the model to 32x32 images: the first convolution (timm's
  ``pretrained_cfg["first_conv"]``) becomes 3x3 stride 1 with the same output width, and a
  stem max-pool (attribute ``maxpool``) is removed. ``img_size`` (> 0) is passed to models
  that take it (ViTs need it for inputs other than their default size).
"""

from __future__ import annotations

from typing import Any, Mapping

import timm
import torch
from torch import nn

from unnas.generators.layers import bad_param
from unnas.registry import GENERATORS
from unnas.spec import Backbone, Generator


def _set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, module)


def small_stem(model: nn.Module, in_channels: int) -> bool:
    """Make ``model`` CIFAR-sized in place; returns False if it has no conv stem to change."""
    path = (getattr(model, "pretrained_cfg", None) or {}).get("first_conv")
    if isinstance(path, (list, tuple)):
        path = path[0]
    try:
        conv = model.get_submodule(path) if path else None
    except AttributeError:
        conv = None
    if not isinstance(conv, nn.Conv2d):
        return False
    _set_submodule(model, path, nn.Conv2d(in_channels, conv.out_channels, 3, 1, 1, bias=conv.bias is not None))
    if isinstance(getattr(model, "maxpool", None), nn.MaxPool2d):
        model.maxpool = nn.Identity()
    return True


class TimmBackbone(Backbone):
    def __init__(self, model: nn.Module, has_spatial: bool, num_features: int, num_classes: int | None):
        super().__init__()
        self.model = model
        self.has_spatial = has_spatial
        self.num_features = num_features
        self.set_classifier(num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        f = self.model.forward_features(x)
        return f if self.has_spatial else self.model.forward_head(f, pre_logits=True)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if x.dim() == 4:
            x = self.model.forward_head(x, pre_logits=True)
        if pre_logits or self.classifier is None:
            return x
        return self.classifier(x)


@GENERATORS.register("timm")
class TimmGenerator(Generator):
    """A timm model by name (``model``), randomly initialised. ``stem``: "default" or "small"."""

    name = "timm"
    defaults = {"model": "resnet18", "stem": "default", "img_size": 0}

    def uses_seed(self, params: Mapping[str, Any]) -> bool:
        return False

    def resolve(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        out = super().resolve(params)  # a bad model or stem is refused before any sampling
        if out["stem"] not in ("default", "small"):
            raise bad_param(self.name, "stem", out["stem"], ["default", "small"])
        if not timm.is_model(out["model"]):
            raise bad_param(self.name, "model", out["model"], "a timm model name (timm.list_models())")
        return out

    def build(self, params, seed, in_channels, num_classes=None) -> Backbone:
        params = self.resolve(params)
        name = params["model"]
        kwargs: dict[str, Any] = {"pretrained": False, "num_classes": 0, "in_chans": in_channels}
        if params["img_size"] > 0:
            kwargs["img_size"] = params["img_size"]
        try:
            model = timm.create_model(name, **kwargs)
        except TypeError as e:
            raise bad_param(self.name, "img_size", params["img_size"], "0 for models without an img_size argument",
                            message=str(e)) from None
        if params["stem"] == "small" and not small_stem(model, in_channels):
            raise bad_param(self.name, "stem", "small", "default", message=f"{name} has no convolutional stem to replace")
        has_spatial, dim = self._probe(model, in_channels, params["img_size"])
        net = TimmBackbone(model, has_spatial, dim, num_classes)
        net.structure = f"{name}/{params['stem']}"
        return net

    @staticmethod
    def _probe(model: nn.Module, in_channels: int, img_size: int) -> tuple[bool, int]:
        """Feature layout and pooled width from one forward pass (eval mode, no state change)."""
        cfg_size = (getattr(model, "pretrained_cfg", None) or {}).get("input_size", (3, 224, 224))[-1]
        sizes = [img_size] if img_size > 0 else [32, cfg_size]
        model.eval()
        err: Exception | None = None
        try:
            for s in sizes:
                try:
                    with torch.no_grad():
                        f = model.forward_features(torch.zeros(1, in_channels, s, s))
                        pooled = model.forward_head(f, pre_logits=True)
                    return f.dim() == 4 and f.shape[1] == pooled.shape[-1], int(pooled.shape[-1])
                except (RuntimeError, AssertionError, ValueError) as e:
                    err = e
        finally:
            model.train()
        raise bad_param("timm", "model", type(model).__name__, None, message=f"cannot run the model: {err}")
