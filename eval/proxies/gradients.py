"""Gradient saliency proxies (Abdelfattah et al., ICLR 2021) on the objective's label-free loss.

The reference computes them with the cross-entropy of the class labels; here the loss is the
objective's own pretext loss (``objective(images, None, generator)["loss"]``, e.g. rotation
prediction), so no label is read. Like the reference: one batch of 64 images, a copy of the whole
objective (backbone and pretext head) in training mode, sums over the weights of every convolution
and linear layer:

* ``grad_norm``: ``sum_l ||dL/dW_l||_2``;
* ``snip``: ``sum |W * dL/dW|`` (the gradient of the loss with respect to a unit mask on each weight);
* ``grasp``: ``sum -W * (H g)``, with ``g = dL/dW`` and ``H`` the Hessian (the reference code's sign:
  GraSP prunes the weights with the highest ``W * Hg``; ranked as is, higher is better);
* ``fisher``: for every output channel ``k`` of a layer with output ``a`` and gradient ``dL/da``,
  ``F_k = 0.5 * mean_n (sum_spatial a * dL/da)^2``; summed over channels as the reference code sums
  its per-weight array, where each channel's value stands once for every weight of its filter
  (``sum_k F_k * numel(W[k])``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from unnas.eval.proxies.base import (
    ProxyInput,
    check_positive,
    fork,
    label_free_loss,
    loss_gradients,
    memo_key,
    objective_copy,
    shared,
    weight_layers,
)

from unnas.registry import PROXIES


@dataclass(frozen=True)
class GradientOptions:
    batch_size: int = 64

    def __post_init__(self):
        check_positive("gradient proxy", batch_size=self.batch_size)


def saliencies(x: ProxyInput, options: GradientOptions, fisher: bool) -> dict[str, float]:
    """``grad_norm``, ``snip`` and (with ``fisher``) ``fisher`` from one forward and backward of the
    loss. With a memo all three are computed and shared by the proxies of one network and batch."""
    key = memo_key(x, "loss_saliencies", options.batch_size)
    if key is None:
        return _saliencies(x, options, fisher)
    return shared(x, key, lambda: _saliencies(x, options, True))


def _saliencies(x: ProxyInput, options: GradientOptions, fisher: bool) -> dict[str, float]:
    obj = objective_copy(x)
    layers = weight_layers(obj)
    total = [0.0]

    def on_output(layer, inputs, out):
        act = out.detach().clone()  # the output as it was, even if a later op changes it in place

        def on_grad(grad):
            prod = act * grad
            per_sample = prod.sum(dim=tuple(range(2, prod.dim()))) if prod.dim() > 2 else prod
            total[0] += float(0.5 * per_sample.pow(2).mean(0).sum()) * layer.weight[0].numel()

        out.register_hook(on_grad)

    handles = [m.register_forward_hook(on_output) for m in layers] if fisher else []
    try:
        label_free_loss(obj, x.batch(options.batch_size), x.generator).backward()
    finally:
        for h in handles:
            h.remove()
    grads = [torch.zeros_like(m.weight) if m.weight.grad is None else m.weight.grad for m in layers]
    out = {"grad_norm": sum(float(g.norm()) for g in grads),
           "snip": sum(float((m.weight.detach() * g).abs().sum()) for m, g in zip(layers, grads))}
    return {**out, "fisher": total[0]} if fisher else out


@PROXIES.register("grad_norm", log_scale=False, needs_loss=True, config=GradientOptions)
def grad_norm(x: ProxyInput, options: GradientOptions) -> float:
    return saliencies(x, options, fisher=False)["grad_norm"]


@PROXIES.register("snip", log_scale=False, needs_loss=True, config=GradientOptions)
def snip(x: ProxyInput, options: GradientOptions) -> float:
    return saliencies(x, options, fisher=False)["snip"]


@PROXIES.register("grasp", log_scale=False, needs_loss=True, config=GradientOptions)
def grasp(x: ProxyInput, options: GradientOptions) -> float:
    obj = objective_copy(x)
    layers = weight_layers(obj)
    weights = [m.weight for m in layers]
    images = x.batch(options.batch_size)
    # both passes see the same batch and the same augmentation
    g = [t.detach() for t in loss_gradients(obj, images, fork(x.generator), layers)]
    g_graph = loss_gradients(obj, images, fork(x.generator), layers, create_graph=True)
    z = sum((a * b).sum() for a, b in zip(g, g_graph))
    if not z.requires_grad:
        return 0.0
    hg = torch.autograd.grad(z, weights, allow_unused=True)
    return -sum(float((w.detach() * h).sum()) for w, h in zip(weights, hg) if h is not None)


@PROXIES.register("fisher", log_scale=False, needs_loss=True, config=GradientOptions)
def fisher(x: ProxyInput, options: GradientOptions) -> float:
    return saliencies(x, options, fisher=True)["fisher"]
