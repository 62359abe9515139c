"""DMaskingNAS (FBNetV2, Wan et al. 2020) driven by the loss of any objective: search method
``dmasking``, options section ``dmasking``, space ``fbnet-macro``
(:mod:`unnas.generators.fbnet_macro`).

Supernet: every layer is one MobileNetV2 block built at its widest (the widest input, the largest
expansion, the widest stage), whose outputs are multiplied by Gumbel-softmax mixes of channel
masks (:mod:`unnas.search.masks`):

* stage widths: the choices ``round(s * channels[stage])`` for ``s`` in ``channel_scales``; one
  choice per stage, shared by the stage's layers (their residual sums need one width); the
  projection (and a stage's 1x1 identity conv) output is masked with it;
* expansions: the hidden width of layer ``l`` is ``round(cin * t)`` for the chosen input width
  ``cin`` and expansion ``t``; its mask mixes the masks of every (width, expansion) pair with weight
  ``g_cin * g_t``, and multiplies the outputs of the expansion and the depthwise convs. Expansion 0
  is the identity layer (NAS-Bench-Macro's 1x1 conv at a stage's first layer), mixed as
  ``g_0 * identity(x) + (1 - g_0) * block(x)``, the block's hidden mask then mixing the non-zero
  expansions with their Gumbel-softmax renormalised among themselves;
* input resolution: the whole network runs on the input subsampled to every resolution in
  ``resolutions``; each output map is zero-interleaved onto the full-resolution grid, scaled by
  ``(H W) / (h w)`` so that its global average pool equals that of the map itself, and the maps
  are mixed with the resolution's Gumbel-softmax weights.

With one-hot weights the supernet computes exactly the derived network (tested).

Loss of the architecture step: ``loss * alpha * log(FLOPs) ** beta`` (FBNet; alpha 0.2, beta 0.6),
FLOPs the expected count of one image from effective shape propagation: every convolution costs
``2 * cin_eff * cout_eff * k^2 / groups * area`` with the Gumbel-weighted channel counts carried
forward (``hidden_eff = sum g_cin g_t round(cin t)``) and the Gumbel-weighted area of every
resolution (the counting convention of :mod:`unnas.generators.complexity`). The weights step
uses the objective's loss. Temperature ``tau * tau_decay ** epoch`` (5.0, 0.956); Gumbel noise is
drawn from the search's generator before every forward pass. Architecture parameters: Adam
(FBNet: lr 0.01, weight decay 5e-4) on 20% of the training images, the weights on the other 80%.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from unnas.errors import UserError
from unnas.generators import fbnet_macro as fm
from unnas.generators.macro import STAGES, InvertedResidual, MacroSkeleton, layer_plan, make_layer
from unnas.registry import SEARCH_METHODS
from unnas.search.base import ArchContext, ArchOptimizer, SearchMethod, Supernet, check_arch_optimizer, supernets_in
from unnas.search.masks import effective, gumbel_noise, gumbel_softmax, interleave, leading_ones, mixed_mask
from unnas.spec import ArchSpec


@dataclass(frozen=True)
class DMaskingOptions(ArchOptimizer):
    """Options of the ``dmasking`` search method (config section ``dmasking``)."""

    arch_lr: float = 0.01
    arch_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    arch_weight_decay: float = 5e-4
    arch_fraction: float = 0.2
    flops_alpha: float = 0.2  # loss * alpha * log(FLOPs) ** beta
    flops_beta: float = 0.6  # 0: no FLOPs term (the loss is only scaled by alpha)
    tau: float = 5.0  # Gumbel-softmax temperature of the first epoch
    tau_decay: float = 0.956  # per epoch
    expansions: list[int] = field(default_factory=lambda: list(fm.EXPANSIONS))  # 0 = identity layer
    channel_scales: list[float] = field(default_factory=lambda: list(fm.CHANNEL_SCALES))
    resolutions: list[float] = field(default_factory=lambda: list(fm.RESOLUTIONS))


def stage_choices(width: int, scales: Sequence[float]) -> list[int]:
    return sorted({max(1, int(round(s * width))) for s in scales})


def out_side(n: int) -> int:
    """Side after a stride-2 layer (3x3 / 5x5 with 'same' padding, or 1x1 without)."""
    return (n - 1) // 2 + 1


class MaskedLayer(nn.Module):
    """Layer ``index`` of the supernet (see the module docstring). ``in_group`` / ``out_group``
    name the channel groups of its input and output widths (``None``: the fixed stem width)."""

    def __init__(self, ctx: ArchContext, index: int, in_group: str | None, out_group: str,
                 cin: Sequence[int], cout: Sequence[int], expansions: Sequence[int], kernel: int, stride: int):
        super().__init__()
        self.ctx, self.index, self.in_group, self.out_group = ctx, index, in_group, out_group
        self.cin, self.cout, self.kernel, self.stride = list(cin), list(cout), kernel, stride
        self.expansions = list(expansions)
        self.zero = self.expansions.index(0) if 0 in self.expansions else None
        nonzero = [t for t in self.expansions if t > 0]
        if not nonzero:
            raise ValueError("a masked layer needs at least one expansion > 0")
        t_max = max(nonzero)
        self.block = InvertedResidual(max(cin), max(cout), stride, t_max, kernel)
        self.residual = stride == 1 and max(cin) == max(cout)
        self.skip = make_layer("0", max(cin), max(cout), stride) if self.zero is not None else None
        hidden = round(max(cin) * t_max)
        masks = torch.stack([leading_ones([round(c * t) for t in nonzero], hidden) for c in self.cin])
        self.register_buffer("hidden_masks", masks, persistent=False)  # (n_cin, n_nonzero, hidden)
        self.register_buffer("out_masks", leading_ones(self.cout, max(cout)), persistent=False)
        # hidden channels of every (input width, expansion) pair, 0 for the identity
        self.hidden_counts = [[round(c * t) for t in self.expansions] for c in self.cin]

    def _in_weights(self, w: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if self.in_group is None:
            return w[self.out_group].new_ones(1)
        return w[self.in_group][0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.ctx.weights
        m_out = mixed_mask(w[self.out_group][0], self.out_masks)
        g_nz = w["expansions_nonzero"][self.index]
        m_h = torch.einsum("a,b,abc->c", self._in_weights(w), g_nz, self.hidden_masks).view(1, -1, 1, 1)
        seq = self.block.conv
        h = seq[2](seq[1](seq[0](x))) * m_h
        h = seq[5](seq[4](seq[3](h))) * m_h
        y = seq[7](seq[6](h)) * m_out
        if self.zero is None:
            return x + y if self.residual else y
        g0 = w["expansions"][self.index][self.zero]
        if self.residual:
            return x + (1 - g0) * y
        return g0 * (self.skip(x) * m_out) + (1 - g0) * y

    def flops_terms(self, w: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Expected FLOPs per pixel of the input map and per pixel of the output map."""
        g_in, g_out = self._in_weights(w), w[self.out_group][0]
        g_t = w["expansions"][self.index]
        cin = effective(g_in, self.cin)
        cout = effective(g_out, self.cout)
        counts = torch.tensor(self.hidden_counts, dtype=g_t.dtype, device=g_t.device)
        hidden = torch.einsum("a,b,ab->", g_in, g_t, counts)
        per_in = 2 * cin * hidden  # 1x1 expansion
        per_out = 2 * self.kernel ** 2 * hidden + 2 * hidden * cout  # depthwise k x k, 1x1 projection
        if self.zero is not None and not self.residual:
            per_out = per_out + g_t[self.zero] * 2 * cin * cout  # the 1x1 identity conv
        return per_in, per_out


class DMaskingSupernet(Supernet):
    def __init__(self, params: Mapping[str, Any], in_channels: int, options: DMaskingOptions,
                 generator: torch.Generator):
        super().__init__("fbnet-macro", params)
        fm.check_params(params)
        self.in_channels = in_channels
        self.resolutions = sorted({float(r) for r in options.resolutions}, reverse=True)
        self.expansions = sorted({int(t) for t in options.expansions})
        self.stages = [stage_choices(c, options.channel_scales) for c in params["channels"]]
        self.add_alphas("resolution", 1, len(self.resolutions), generator)
        for s, choices in enumerate(self.stages):
            self.add_alphas(f"channels{s}", 1, len(choices), generator)
        self.add_alphas("expansions", fm.N_LAYERS, len(self.expansions), generator)
        self.nonzero = [i for i, t in enumerate(self.expansions) if t > 0]
        stem, head = int(params["stem"]), int(params["head"])
        plan = layer_plan(stem, [max(c) for c in self.stages])
        stage_of = [s for s, n in enumerate(STAGES) for _ in range(n)]
        layers = []
        for i, ((_, _, stride), s, k) in enumerate(zip(plan, stage_of, params["kernels"])):
            src = s - 1 if stride == 2 else s  # the stage whose width this layer reads (-1: the stem)
            cin = [stem] if src < 0 else self.stages[src]
            layers.append(MaskedLayer(self.ctx, i, None if src < 0 else f"channels{src}", f"channels{s}", cin,
                                      self.stages[s], self.expansions, int(k), stride))
        self.net = MacroSkeleton(in_channels, stem, layers, max(self.stages[-1]), head, None)
        self.num_features = head
        self.set_classifier(None)
        self.tau = float(options.tau)
        self.noise: dict[str, torch.Tensor] | None = None

    # ---- mixing weights
    def draw_noise(self, generator: torch.Generator | None) -> None:
        self.noise = {k: gumbel_noise(a.shape, generator) for k, a in self.alphas.items()}

    def mixing_weights(self) -> dict[str, torch.Tensor]:
        noise = self.noise or {}
        out = {k: gumbel_softmax(a, self.tau, noise.get(k)) for k, a in self.alphas.items()}
        e = self.alphas["expansions"][:, self.nonzero]
        n = noise.get("expansions")
        out["expansions_nonzero"] = gumbel_softmax(e, self.tau, None if n is None else n[:, self.nonzero])
        return out

    # ---- forward
    def output_size(self, h: int, w: int) -> tuple[int, int]:
        for _ in STAGES:
            h, w = out_side(h), out_side(w)
        return h, w

    def body(self, x: torch.Tensor) -> torch.Tensor:
        g = self.ctx.weights["resolution"][0]
        h, w = x.shape[-2:]
        full = self.output_size(h, w)
        out = None
        for i, r in enumerate(self.resolutions):
            y = self.net.forward_features(fm.subsample(x, fm.scaled_size(h, r), fm.scaled_size(w, r)))
            scale = (full[0] * full[1]) / (y.shape[-2] * y.shape[-1])
            term = (g[i] * scale) * interleave(y, full)
            out = term if out is None else out + term
        return out

    # ---- complexity
    def expected_flops(self, image_size: tuple[int, int], weights: Mapping[str, torch.Tensor] | None = None
                       ) -> torch.Tensor:
        """Expected FLOPs of one ``image_size`` image (differentiable in the mixing weights)."""
        w = weights if weights is not None else self.mixing_weights()
        layers = list(self.net.layers)
        terms = [layer.flops_terms(w) for layer in layers]
        last = effective(w[f"channels{len(STAGES) - 1}"][0], self.stages[-1])
        stem, head = int(self.base_params["stem"]), int(self.base_params["head"])
        total = None
        for i, r in enumerate(self.resolutions):
            h, wd = fm.scaled_size(image_size[0], r), fm.scaled_size(image_size[1], r)
            f = 2 * self.in_channels * 9 * stem * h * wd
            for layer, (per_in, per_out) in zip(layers, terms):
                f = f + per_in * (h * wd)
                if layer.stride == 2:
                    h, wd = out_side(h), out_side(wd)
                f = f + per_out * (h * wd)
            f = f + 2 * last * head * h * wd
            total = w["resolution"][0][i] * f if total is None else total + w["resolution"][0][i] * f
        return total

    def derive(self) -> ArchSpec:
        a = {k: int(v.detach().argmax(dim=-1).flatten()[0]) for k, v in self.alphas.items() if k != "expansions"}
        exps = self.alphas["expansions"].detach().argmax(dim=1).tolist()
        params = {**self.base_params, "resolution": self.resolutions[a["resolution"]],
                  "channels": [self.stages[s][a[f"channels{s}"]] for s in range(len(STAGES))],
                  "expansions": [self.expansions[i] for i in exps]}
        return ArchSpec("fbnet-macro", params, 0)


def build_supernet(params, in_channels, options, generator) -> Supernet:
    return DMaskingSupernet(params, in_channels, options, generator)


@SEARCH_METHODS.register("dmasking", config=DMaskingOptions)
class DMasking(SearchMethod):
    name = "dmasking"
    spaces = {"fbnet-macro": build_supernet}

    def __init__(self, options: DMaskingOptions | None = None):
        super().__init__(options if options is not None else DMaskingOptions())

    def check(self) -> None:
        o = self.options
        check_arch_optimizer(self.name, o)
        checks = [("flops_alpha", o.flops_alpha, o.flops_alpha > 0, "a positive number"),
                  ("flops_beta", o.flops_beta, o.flops_beta >= 0, "a number >= 0"),
                  ("tau", o.tau, o.tau > 0, "a positive temperature"),
                  ("tau_decay", o.tau_decay, 0 < o.tau_decay <= 1, "a factor in (0, 1]"),
                  ("expansions", list(o.expansions), bool(o.expansions) and all(
                      isinstance(t, int) and t >= 0 for t in o.expansions) and max(o.expansions) > 0,
                   "integers >= 0 (0 = identity), at least one > 0"),
                  ("channel_scales", list(o.channel_scales), bool(o.channel_scales) and all(
                      0 < s <= 1 for s in o.channel_scales), "fractions in (0, 1]"),
                  ("resolutions", list(o.resolutions), bool(o.resolutions) and all(
                      0 < r <= 1 for r in o.resolutions), "fractions in (0, 1]")]
        for key, value, ok, allowed in checks:
            if not ok:
                raise UserError(f"dmasking.{key}", value, allowed)

    def epoch_start(self, objective: nn.Module, epoch: int) -> dict[str, float]:
        tau = self.options.tau * self.options.tau_decay ** epoch
        for s in supernets_in(objective):
            s.tau = tau
        return {"temperature": tau}

    def before_forward(self, objective: nn.Module, generator: torch.Generator) -> None:
        for s in supernets_in(objective):
            s.draw_noise(generator)

    def arch_loss(self, supernet: Supernet, loss: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        flops = supernet.expected_flops(image_size)
        return loss * self.options.flops_alpha * torch.log(flops) ** self.options.flops_beta

    @torch.no_grad()
    def epoch_end(self, supernet: Supernet, image_size: tuple[int, int]) -> dict[str, float]:
        noise, supernet.noise = supernet.noise, None
        try:
            flops = float(supernet.expected_flops(image_size))
        finally:
            supernet.noise = noise
        return {"expected_flops": flops, "flops_factor": self.options.flops_alpha * math.log(flops) ** self.options.flops_beta}
