"""The proxy contract: the network is left as found, no label is read, bad input is refused."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from unnas.eval.proxies import NonFiniteProxy, ProxyInput, compute_proxy, images_needed, scaled
from unnas.eval.proxies.base import LOG10_ZERO, relu_patterns
from unnas.pretext.rotation import Rotation

from unnas.config import DataConfig
from unnas.data import load_dataset
from unnas.errors import UserError
from unnas.objectives import DataInfo, build_objective
from unnas.registry import PROXIES
from unnas.spec import ArchSpec, Backbone, build

INFO = DataInfo(3, 10, (8, 8), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
# small batches so that every proxy runs in well under a second here
SMALL = {"naswot": {"batch_size": 4}, "jacob_cov": {"batch_size": 4}, "swap": {"batch_size": 4, "repeats": 2},
         "swap_reg": {"batch_size": 4, "repeats": 2, "mu": 10.0, "sigma": 100.0}, "zico": {"batch_size": 2, "batches": 2},
         "grad_norm": {"batch_size": 4}, "snip": {"batch_size": 4}, "grasp": {"batch_size": 4}, "fisher": {"batch_size": 4},
         "az_expressivity": {"batch_size": 8}, "az_progressivity": {"batch_size": 8}, "az_trainability": {"batch_size": 8},
         "meco": {"image_size": 32}, "zen": {"batch_size": 2, "repeats": 2}, "vkdnw": {"batch_size": 4},
         "vkdnw_single": {"batch_size": 4}}
NAMES = ["az_expressivity", "az_progressivity", "az_trainability", "fisher", "flops", "grad_norm", "grasp", "jacob_cov",
         "meco", "naswot", "params", "snip", "swap", "swap_reg", "synflow", "vkdnw", "vkdnw_single", "zen", "zico"]


def macro_input(objective: str = "rotation", generator: str = "macro", params=None, seed: int = 0) -> ProxyInput:
    torch.manual_seed(seed)
    spec = ArchSpec(generator, params or {"arch": "12012100", "width": 0.25})
    obj = build_objective(objective, build(spec, 3, 10 if objective == "supervised" else None), INFO)
    images = torch.randint(0, 256, (8, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    return ProxyInput(obj, images, torch.Generator().manual_seed(seed + 1))


def snapshot(module: nn.Module) -> dict:
    return {"state": {k: v.clone() for k, v in module.state_dict().items()},
            "modes": {k: m.training for k, m in module.named_modules()},
            "requires_grad": {k: p.requires_grad for k, p in module.named_parameters()},
            "grads": {k: None if p.grad is None else p.grad.clone() for k, p in module.named_parameters()}}


def same(a: dict, b: dict) -> bool:
    def eq(u, v):
        return (u is None and v is None) or (u is not None and v is not None and torch.equal(u, v))
    return (a["modes"] == b["modes"] and a["requires_grad"] == b["requires_grad"]
            and a["state"].keys() == b["state"].keys() and all(torch.equal(a["state"][k], b["state"][k]) for k in a["state"])
            and all(eq(a["grads"][k], b["grads"][k]) for k in a["grads"]))


def test_every_proxy_is_registered_with_metadata():
    assert PROXIES.names() == NAMES
    for name in NAMES:
        meta = PROXIES.meta(name)
        assert isinstance(meta["log_scale"], bool) and isinstance(meta["needs_loss"], bool)
    assert {n for n in NAMES if PROXIES.meta(n)["log_scale"]} == {"synflow", "params", "flops"}
    assert {n for n in NAMES if PROXIES.meta(n)["needs_loss"]} == {"grad_norm", "snip", "grasp", "fisher", "zico"}


@pytest.mark.parametrize("name", NAMES)
def test_network_and_generator_left_as_found(name):
    x = macro_input()
    x.backbone.layers[2].eval()  # a mixed train/eval state
    x.backbone.stem[0].weight.requires_grad_(False)  # a frozen layer
    x.backbone.head[0].weight.grad = torch.ones_like(x.backbone.head[0].weight)  # a pending gradient
    before, state = snapshot(x.objective), x.generator.get_state().clone()
    first = compute_proxy(name, x, SMALL.get(name))
    assert math.isfinite(first)
    assert same(before, snapshot(x.objective))
    assert torch.equal(state, x.generator.get_state())
    assert compute_proxy(name, x, SMALL.get(name)) == first  # a pure function of its input


class Spy(Rotation):
    """Rotation prediction that records the labels it was given."""

    seen: list = []

    def forward(self, images, labels=None, generator=None):
        Spy.seen.append(labels)
        return super().forward(images, labels, generator)


@pytest.mark.parametrize("name", NAMES)
def test_only_loss_proxies_call_the_objective_and_never_with_labels(name):
    x = macro_input()
    x = ProxyInput(Spy(x.backbone, INFO), x.images, x.generator)
    Spy.seen = []
    compute_proxy(name, x, SMALL.get(name))
    assert bool(Spy.seen) == PROXIES.meta(name)["needs_loss"]
    assert all(labels is None for labels in Spy.seen)


def test_permuting_the_labels_changes_nothing():
    data = load_dataset(DataConfig(name="fake"))
    info = DataInfo.of(data)
    idx = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(3))[:8]

    def values(labels):  # the batch is drawn from the split; the labels are never passed on
        assert labels.shape[0] == len(data.train)
        torch.manual_seed(0)
        obj = build_objective("rotation", build(ArchSpec("resnet", {"width": 4}), data.channels), info)
        x = ProxyInput(obj, data.train.images[idx], torch.Generator().manual_seed(0))
        return [compute_proxy(n, x, SMALL.get(n)) for n in NAMES]

    permuted = data.train.labels[torch.randperm(len(data.train), generator=torch.Generator().manual_seed(1))]
    assert values(data.train.labels) == values(permuted)


@pytest.mark.parametrize("generator,params", [("resnet", {"width": 4}),
                                              ("relational-mlp", {"width": 16, "nodes": 4, "k": 2.0, "resolution": 8})])
def test_every_proxy_on_other_generators(generator, params):
    x = macro_input(generator=generator, params=params)
    for name in NAMES:
        if name == "meco" and generator == "relational-mlp":  # one image: BatchNorm1d has no batch statistic
            with pytest.raises(UserError, match="meco reads one image"):
                compute_proxy(name, x)
            continue
        assert math.isfinite(compute_proxy(name, x, SMALL.get(name))), name


class Relus(Backbone):
    num_features = 2

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.act = nn.ReLU()

    def forward_features(self, x):
        h = self.fc(x.flatten(1))
        return self.act(h) + F.relu(h) + torch.relu(-h) + h.clone().relu_()


def test_module_and_functional_relus_are_recorded():
    patterns = relu_patterns(Relus(), torch.randn(5, 1, 1, 3))
    assert len(patterns) == 4 and all(p.shape == (5, 2) for p in patterns)
    assert torch.equal(patterns[0], patterns[1]) and torch.equal(patterns[0], patterns[3])


def test_a_network_without_relu_is_refused():
    class NoRelu(Relus):
        def forward_features(self, x):
            return torch.tanh(self.fc(x.flatten(1)))

    with pytest.raises(UserError, match="no ReLU"):
        relu_patterns(NoRelu(), torch.randn(2, 1, 1, 3))


def test_loss_proxies_refuse_an_objective_that_reads_labels():
    x = macro_input("supervised")
    with pytest.raises(UserError, match="must not read labels"):
        compute_proxy("grad_norm", x, SMALL["grad_norm"])
    assert math.isfinite(compute_proxy("synflow", x))  # a proxy of the backbone alone is fine


def test_bad_input_is_refused_with_one_line():
    x = macro_input()
    allowed = "allowed: az_expressivity, az_progressivity, az_trainability, fisher, flops"
    with pytest.raises(UserError, match=f"unknown proxy 'nope'.*{allowed}"):
        compute_proxy("nope", x)
    with pytest.raises(UserError, match="proxy naswot option batch_size: naswot reads 128 images, the batch has 8"):
        compute_proxy("naswot", x)  # the default batch of 128 is more than the 8 images given
    with pytest.raises(UserError, match="proxy zico option batch_size x batches"):
        compute_proxy("zico", x, {"batch_size": 8})
    with pytest.raises(UserError, match="unknown option 'batch'"):
        compute_proxy("naswot", x, {"batch": 4})
    with pytest.raises(UserError, match="a positive integer"):
        compute_proxy("snip", x, {"batch_size": 0})
    with pytest.raises(UserError, match="allowed: normal, none"):
        compute_proxy("swap", x, {"init": "xavier"})
    with pytest.raises(UserError, match="proxy swap_reg option mu: the size regulariser needs a centre and a width"):
        compute_proxy("swap_reg", x, {"batch_size": 4})
    with pytest.raises(UserError, match="has no options"):
        compute_proxy("synflow", x, {"batch_size": 4})
    with pytest.raises(UserError, match="uint8"):
        compute_proxy("synflow", ProxyInput(x.objective, x.images.float(), x.generator))
    with pytest.raises(UserError, match="2 or more"):
        compute_proxy("zico", x, {"batches": 1})


def test_not_finite_values_are_reported(flat, make_linear, make_input):
    dead = make_input(flat(make_linear([[0.0, 0.0]]), num_features=1), [[1, 2], [3, 4], [5, 6]])
    with pytest.raises(NonFiniteProxy, match="jacob_cov is not finite"):  # no input gradient to correlate
        compute_proxy("jacob_cov", dead, {"batch_size": 3})
    twins = make_input(flat(make_linear([[1.0, -1.0]]), nn.ReLU(), num_features=1), [[2, 1], [2, 1]])
    with pytest.raises(NonFiniteProxy, match="naswot"):  # two images with one code: K is singular
        compute_proxy("naswot", twins, {"batch_size": 2})


def test_scaled_and_images_needed():
    assert scaled("synflow", 0.0) == LOG10_ZERO < -323
    assert scaled("synflow", 1e-300) > LOG10_ZERO
    with pytest.raises(ValueError, match="negative"):
        scaled("flops", -1.0)
    assert scaled("grasp", -2.5) == -2.5  # not log-scaled
    assert images_needed("naswot") == 128 and images_needed("zico") == 256 and images_needed("swap") == 16
    assert images_needed("grad_norm") == images_needed("jacob_cov") == 64 and images_needed("synflow") == 1
    assert images_needed("zico", {"batch_size": 3, "batches": 4}) == 12


def test_check_options_refuses_what_a_job_would_fail_on_without_a_network():
    from unnas.eval.proxies import check_options
    from unnas.eval.proxies.patterns import SwapRegOptions

    assert check_options("swap_reg", {"mu": 60.0, "sigma": 400.0}) == SwapRegOptions(mu=60.0, sigma=400.0)
    assert check_options("synflow") is None
    for options, words in [({}, "proxy swap_reg option mu"), ({"mu": 1.0}, "proxy swap_reg option sigma"),
                           ({"mu": float("nan"), "sigma": 1.0}, "proxy swap_reg option mu"),
                           ({"mu": 1.0, "sigma": -1.0}, "proxy swap_reg option sigma"),
                           ({"mu": 1.0, "sigma": 1.0, "batch_size": 0}, "a positive integer")]:
        with pytest.raises(UserError, match=words):
            check_options("swap_reg", options)
    with pytest.raises(UserError, match="unknown proxy 'nope'"):
        check_options("nope")
