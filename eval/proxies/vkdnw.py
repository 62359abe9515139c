"""VKDNW (Tybl & Neumann, CVPR 2025): the spread of the Fisher information spectrum of an untrained network.

As in the authors' NAS-Bench-201 code (``compute_vkdnw_score.py``):

1. A copy of the network *with a classifier*: the backbone's own ``classifier`` when it has one,
   else a new ``Linear(num_features, num_classes)`` on its pooled features (``num_classes`` from the
   objective's data; the number only, never a label). Its convolutions and linear layers are re-drawn
   Kaiming-normal (fan-in, ReLU gain) with zero biases, BatchNorm2d/GroupNorm to unit weight and zero
   bias (AZ-NAS's ``kaiming_init``, applied to the whole classifier network; ``init="none"`` keeps the
   network's own weights, and a new classifier then keeps PyTorch's default draw). The network is
   put in evaluation mode with every BatchNorm at its initial running statistics (mean 0, variance 1),
   as the authors' code sees a freshly built network, so every sample is computed alone.
2. ``batch_size`` (64) N(0, 1) images of the data's shape (``input="data"``: the batch's own images,
   normalized), drawn after the weights from the proxy's generator.
3. The selected weights ``theta``: the first ``tensors`` (128) tensors of ``named_parameters()`` (the
   classifier's last), ``per_tensor`` (1) entries of each at ``linspace(0, numel - 1, per_tensor)``
   (the first entry when 1). ``J_n = d logits(x_n) / d theta``, a ``K x P`` matrix per image.
4. The Fisher information of the model's own predictive distribution, as the authors' code forms it:
   ``p_n = (1 - a) softmax(logits_n) + a / K`` (smoothed away from 0; ``a`` is 0.05 in half precision
   as in the authors' code, so ``1 - a`` = 0.9502 and for 10 classes ``p_n`` sums to 1 + 1.7e-4), ``L_n`` the lower-triangular
   factor with ``L_n L_n^T = diag(p_n) - p_n p_n^T`` (the closed form of Tanabe & Sagae, JRSS B 1992),
   ``A_n = L_n J_n`` and ``F = mean_n A_n^T A_n`` (``P x P``). This is ``J^T L^T L J``; the Fisher
   ``J^T L L^T J`` of the paper's derivation would multiply by ``L^T``; the code, whose numbers the
   paper reports, is followed.
5. ``lambda``: the singular values of ``F``; their deciles ``q_1..q_9`` (linear interpolation),
   ``t = q / (sum q + 1e-10)``.

* ``vkdnw``: the entropy ``-sum t log(t + 1e-10)`` (the paper's Eq. 11): high when the deciles are
  balanced (the weights are about equally hard to estimate).
* ``vkdnw_single``: ``N + vkdnw`` (Eq. 12), ``N`` the number of parameter tensors of the classifier
  network (the code's ``vkdnw_dim``); the count dominates, as the entropy is at most ``log 9`` = 2.2.

``VKDNW_agg``, the paper's headline ranking (NAS-Bench-201 CIFAR-10 rho 0.919), is the ``logrank``
ensemble ``sum log(rank / N)`` of ``vkdnw_single``, ``jacob_cov``, ``az_expressivity``,
``az_trainability`` and ``flops``: ``--ensemble
logrank:vkdnw_single,jacob_cov,az_expressivity,az_trainability,flops``.

Label-free as published: the expectation over the class ``y`` is taken under the network's own
prediction ``p_n`` in closed form (no label is drawn or read). No loss.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap
from unnas.eval.proxies.aznas import SyntheticInputOptions, kaiming_init
from unnas.eval.proxies.base import ProxyInput, backbone_copy, check_positive

from unnas.errors import UserError
from unnas.registry import PROXIES
from unnas.spec import Backbone

SMOOTHING = 0.05  # the authors' alpha: p = (1 - alpha) softmax + alpha / K, alpha in half precision
EPS = 1e-10
DECILES = torch.arange(1, 10, dtype=torch.float64) / 10
AFFINE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


@dataclass(frozen=True)
class VkdnwOptions(SyntheticInputOptions):
    batch_size: int = 64
    input: str = "gaussian"  # "gaussian": N(0, 1) images (the authors' default); "data": the batch's images
    init: str = "kaiming"  # "kaiming": re-drawn Kaiming-normal fan-in weights (the authors'); "none": own weights
    tensors: int = 128  # the first parameter tensors whose weights enter the Fisher matrix
    per_tensor: int = 1  # evenly spaced weights taken from each of those tensors

    def __post_init__(self):
        check_positive("vkdnw", batch_size=self.batch_size, tensors=self.tensors, per_tensor=self.per_tensor)
        self.check_input("vkdnw")


class Classifier(nn.Module):
    """A backbone and a linear classifier on its pooled features: ``x -> logits``."""

    def __init__(self, backbone: Backbone, classes: int):
        super().__init__()
        self.backbone = backbone
        self.classifier = nn.Linear(backbone.num_features, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone.forward_head(self.backbone.forward_features(x), pre_logits=True))


def classifier_network(x: ProxyInput) -> nn.Module:
    """A copy of the backbone with its own classifier, or with a new one of the data's class count."""
    net = backbone_copy(x)
    if getattr(net, "classifier", None) is not None:
        return net
    classes = x.objective.info.num_classes
    if classes < 2:
        raise UserError("proxy vkdnw data", classes, "at least 2 classes",
                        message="vkdnw reads the spread of a classifier's prediction over the data's classes")
    return Classifier(net, classes).to(x.device)


def initial_statistics(net: nn.Module) -> None:
    """Evaluation mode, every BatchNorm's running mean 0 and variance 1."""
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
            m.reset_running_stats()
    net.eval()


def selected(net: nn.Module, options: VkdnwOptions) -> list[tuple[str, torch.Tensor]]:
    """The chosen weights: (parameter name, flat indices), in ``named_parameters()`` order."""
    return [(k, torch.linspace(0, v.numel() - 1, options.per_tensor, device=v.device).long())
            for k, v in list(net.named_parameters())[:options.tensors]]


def func_jacobians(net: nn.Module, inputs: torch.Tensor, chosen: list[tuple[str, torch.Tensor]]) -> torch.Tensor:
    """``(B, K, P)`` for any network: ``vmap`` over the images of ``jacrev`` over the chosen weights."""
    params = {k: v.detach() for k, v in net.named_parameters()}
    buffers = {k: v.detach() for k, v in net.named_buffers()}
    where = dict(chosen)
    theta = {k: params[k].flatten()[idx] for k, idx in chosen}

    def logits(sel: dict, image: torch.Tensor) -> torch.Tensor:
        full = dict(params)
        for k, v in sel.items():
            full[k] = params[k].flatten().index_put((where[k],), v).reshape(params[k].shape)
        return functional_call(net, (full, buffers), (image.unsqueeze(0),)).squeeze(0)

    with warnings.catch_warnings():  # torch.func's note that some layers lack a batching rule
        warnings.filterwarnings("ignore", message="There is a performance drop", category=UserWarning)
        jac = vmap(jacrev(logits), in_dims=(None, 0))(theta, inputs)
    return torch.cat([jac[k].flatten(2) for k, _ in chosen], dim=2)


def _owners(net: nn.Module, chosen: list[tuple[str, torch.Tensor]]) -> dict[nn.Module, list] | None:
    """Each owning module -> [(column, parameter attribute, flat index)]; None unless every chosen
    weight belongs to a layer that is affine in it and treats every image alone (evaluation mode)."""
    owners: dict[nn.Module, list] = {}
    col = 0
    for name, idx in chosen:
        prefix, _, attr = name.rpartition(".")
        module = net.get_submodule(prefix)
        batch_stats = isinstance(module, nn.modules.batchnorm._BatchNorm) and not module.track_running_stats
        if not isinstance(module, AFFINE) or attr not in ("weight", "bias") or batch_stats:
            return None
        for i in idx.tolist():
            owners.setdefault(module, []).append((col, attr, i))
            col += 1
    return owners


def _probes(module: nn.Module, entries: list, x: torch.Tensor) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
    """For each chosen weight ``w`` of ``module``: ``d module(x) / d w`` (the module applied with that
    weight 1 and every other parameter 0, exact for an affine layer), kept on the channels it reaches."""
    zeros = {n: torch.zeros_like(p) for n, p in module.named_parameters(recurse=False)}
    out = []
    for col, attr, i in entries:
        unit = zeros[attr].flatten().clone()
        unit[i] = 1
        z = functional_call(module, {**zeros, attr: unit.view_as(zeros[attr])}, (x,)).double()
        chans = (z != 0).flatten(2).any(dim=2).any(dim=0) if z.dim() > 2 else (z != 0).any(dim=0)
        idx = chans.nonzero().flatten()
        out.append((col, idx, z[:, idx]))
    return out


def logit_jacobians(net: nn.Module, inputs: torch.Tensor, options: VkdnwOptions) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, K, P)`` derivatives of each image's logits with respect to the chosen weights, and the
    logits ``(B, K)``. In evaluation mode each image is computed alone, so one forward pass and one
    backward pass per class give every image's gradient at each layer's output; the derivative of a
    layer that is affine in its weights (convolutions, linear layers, normalizations) with respect
    to one weight is that layer applied with the weight 1 and its other parameters 0. Networks with
    other parametrized layers take the general, slower ``torch.func`` path."""
    chosen = selected(net, options)
    owners = _owners(net, chosen)
    if owners is None:
        with torch.no_grad():
            logits = net(inputs)
        return func_jacobians(net, inputs, chosen), logits
    for p in net.parameters():
        p.requires_grad_(False)
    cols = sum(len(e) for e in owners.values())
    state = {"k": 0, "probing": False}
    jac: torch.Tensor | None = None

    def on_forward(module, args, out):
        if state["probing"]:  # the probes' own calls of the module
            return
        state["probing"] = True
        try:
            with torch.no_grad():
                probes = _probes(module, owners[module], args[0])
        finally:
            state["probing"] = False

        def on_grad(g):
            for col, idx, z in probes:
                jac[:, state["k"], col] += (g[:, idx].double() * z).flatten(1).sum(dim=1)

        if out.requires_grad:
            out.register_hook(on_grad)

    handles = [m.register_forward_hook(on_forward) for m in owners]
    try:
        logits = net(inputs.detach().requires_grad_())
    finally:
        for h in handles:
            h.remove()
    jac = torch.zeros(inputs.shape[0], logits.shape[1], cols, dtype=torch.float64, device=inputs.device)
    for k in range(logits.shape[1]):
        state["k"] = k
        logits[:, k].sum().backward(retain_graph=k < logits.shape[1] - 1)
    return jac, logits.detach()


def covariance_factor(p: torch.Tensor) -> torch.Tensor:
    """``(B, K)`` probabilities -> ``(B, K, K)`` lower-triangular ``L`` with ``L L^T = diag(p) - p p^T``
    (Tanabe & Sagae 1992): ``q_j = 1 - sum_{i<=j} p_i``, ``d_j = sqrt(p_j q_j / q_{j-1})``,
    ``L_jj = d_j`` and ``L_ij = -p_i d_j / q_j`` below the diagonal (the last column is 0: ``q_K = 0``)."""
    k = p.shape[1]
    q = (1 - p.cumsum(dim=1)).clamp_min(0)
    q[:, -1] = 0
    q_prev = torch.cat([torch.ones_like(q[:, :1]), q[:, :-1]], dim=1)
    d = (p * q / q_prev).sqrt()
    ratio = torch.where(q > 0, d / q.clamp_min(torch.finfo(q.dtype).tiny), torch.zeros_like(q))
    lower = torch.tril(torch.ones(k, k, dtype=torch.bool, device=p.device), diagonal=-1)
    return torch.where(lower, -p.unsqueeze(2) * ratio.unsqueeze(1), 0.0) + torch.diag_embed(d)


def fisher_matrix(jac: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """``mean_n (L_n J_n)^T (L_n J_n)`` in float64, ``L_n`` the factor of the smoothed prediction's covariance."""
    alpha = torch.tensor(SMOOTHING, dtype=torch.float16)  # the authors' half-precision constant
    p = torch.softmax(logits.double(), dim=1) * float(1 - alpha) + float(alpha / logits.shape[1])
    a = covariance_factor(p) @ jac.double()
    return torch.einsum("bkp,bkq->pq", a, a) / a.shape[0]


def decile_entropy(lambdas: torch.Tensor) -> float:
    """``-sum t log(t + 1e-10)``, ``t`` the deciles 0.1..0.9 of ``lambdas`` over their sum (+ 1e-10)."""
    q = torch.quantile(lambdas.double(), DECILES.to(lambdas.device))
    t = q / (q.abs().sum() + EPS)
    return float(-(t * torch.log(t + EPS)).sum())


def spectrum(x: ProxyInput, options: VkdnwOptions) -> tuple[torch.Tensor, int]:
    """The singular values of the Fisher matrix and the classifier network's number of parameter tensors."""
    net = classifier_network(x)
    if options.init == "kaiming":
        with torch.no_grad():
            kaiming_init(net, x.generator)
    initial_statistics(net)
    if options.input == "data":
        inputs = x.inputs(options.batch_size)
    else:
        shape = (options.batch_size, *x.inputs(1).shape[1:])
        inputs = torch.randn(shape, generator=x.generator, device=x.generator.device).to(x.device)
    fisher = fisher_matrix(*logit_jacobians(net, inputs, options))
    if not torch.isfinite(fisher).all():
        return torch.full((1,), math.nan), 0
    return torch.linalg.svdvals(fisher), len(list(net.parameters()))


@PROXIES.register("vkdnw", log_scale=False, needs_loss=False, config=VkdnwOptions)
def vkdnw(x: ProxyInput, options: VkdnwOptions) -> float:
    return decile_entropy(spectrum(x, options)[0])


@PROXIES.register("vkdnw_single", log_scale=False, needs_loss=False, config=VkdnwOptions)
def vkdnw_single(x: ProxyInput, options: VkdnwOptions) -> float:
    lambdas, tensors = spectrum(x, options)
    return tensors + decile_entropy(lambdas)
