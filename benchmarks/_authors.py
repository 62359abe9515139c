"""The authors' public code as callables for ``benchmarks/proxies.py --speed --authors-dir DIR``.

``DIR`` holds one checkout per repository, named as on GitHub (e.g. with ``git archive | tar x``):
``zero-cost-nas`` (SamsungLabs: grad_norm, snip, grasp, fisher, synflow, jacob_cov), ``SWAP``
(pym1024: swap, swap_reg), ``ZiCo`` (SLDGroup), ``ZenNAS`` (idstcv: zen), ``AZ-NAS``
(cvlab-yonsei: the three az components), ``MeCo`` (HamsterMimi). Nothing of theirs is copied here:
their modules are imported from ``DIR`` and fed the same network and inputs as ours, the way
``tests/eval/test_proxies_reference.py`` and ``test_proxies_sota_reference.py`` recorded their
values (so the values agree, which the benchmark reports):

* a proxy on a loss gets the objective wrapped as a module whose output is its label-free loss
  (:class:`LossNet`; ``loss_fn = lambda out, target: out``; the targets are zeros, never read);
* their draws from the global RNG start from our generator's state (the global state is restored
  after), and ``.cuda()`` is the identity while their code runs (:func:`cpu_only`);
* modules their entry points import but never call on this path (ZenNAS's and MeCo's script-level
  imports of their model zoos) are empty stand-ins.

NASWOT has no entry: BayesWatch/nas-without-training computes it inside the module-level loop of
its ``score_networks.py`` script (arguments parsed at import), so there is no function to import.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import sys
import types
import warnings
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from unnas.eval.proxies import ProxyInput, check_options
from unnas.eval.proxies.aznas import cell_features
from unnas.eval.proxies.base import fork

NO_NASWOT = ("BayesWatch/nas-without-training computes NASWOT inside its score_networks.py script's "
             "module-level loop: no function to import")


class LossNet(nn.Module):
    """The objective as a module: ``forward(images)`` is its label-free loss. ``advance``: one
    generator that advances over the calls (ZiCo's batches), else the same state every call."""

    def __init__(self, x: ProxyInput, advance: bool):
        super().__init__()
        self.objective = copy.deepcopy(x.objective).train()
        self.start, self.advance = x.generator, advance
        self.generator = fork(x.generator)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.objective(images, None, self.generator if self.advance else fork(self.start))["loss"]


def label_loss(out, target):
    return out


@contextlib.contextmanager
def cpu_only():
    """``Tensor.cuda`` and ``Module.cuda`` as the identity."""
    saved = torch.Tensor.cuda, nn.Module.cuda
    torch.Tensor.cuda = lambda self, *a, **k: self
    nn.Module.cuda = lambda self, *a, **k: self
    try:
        yield
    finally:
        torch.Tensor.cuda, nn.Module.cuda = saved


@contextlib.contextmanager
def global_rng(generator: torch.Generator):
    """The global RNG in ``generator``'s state while their code draws from it."""
    saved = torch.get_rng_state()
    torch.set_rng_state(generator.get_state())
    try:
        yield
    finally:
        torch.set_rng_state(saved)


def import_from(folder: Path, module: str, stand_ins: dict[str, tuple[str, ...]] | None = None) -> types.ModuleType:
    """``module`` imported from ``folder`` (``stand_ins``: empty modules with the given names, for
    imports it never uses here); the repository's own modules are then dropped from
    ``sys.modules`` so that two repositories with a package of the same name (``foresight``,
    ``ZeroShotProxy``) do not meet."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is missing")
    before = set(sys.modules)
    sys.path.insert(0, str(folder))
    for name, attrs in (stand_ins or {}).items():
        sys.modules[name] = types.ModuleType(name)
        for attr in attrs:
            setattr(sys.modules[name], attr, None)
    try:
        return importlib.import_module(module)
    finally:
        sys.path.remove(str(folder))
        for name in set(sys.modules) - before:
            places = [getattr(sys.modules[name], "__file__", None) or "", *getattr(sys.modules[name], "__path__", [])]
            if name in (stand_ins or {}) or any(str(p).startswith(str(folder)) for p in places):
                del sys.modules[name]


def zero_cost_nas(root: Path, options: dict) -> dict[str, Callable]:
    find_measures = import_from(root / "zero-cost-nas", "foresight.pruners.predictive").find_measures

    def measure(name: str) -> Callable:
        def run(x: ProxyInput) -> float:
            opts = check_options(name, options.get(name))
            if name in ("synflow", "jacob_cov"):  # on the backbone and its normalized inputs
                net, inputs = copy.deepcopy(x.backbone).train(), x.inputs(getattr(opts, "batch_size", 1))
            else:
                net, inputs = LossNet(x, advance=False), x.batch(opts.batch_size)
            batch = [(inputs, torch.zeros(inputs.shape[0], dtype=torch.long))]
            return float(find_measures(net, batch, ("random", 1, 10), torch.device("cpu"), loss_fn=label_loss,
                                       measure_names=[name])[name])
        return run

    return {n: measure(n) for n in ("grad_norm", "snip", "grasp", "fisher", "synflow", "jacob_cov")}


def swap(root: Path, options: dict) -> dict[str, Callable]:
    folder = root / "SWAP"
    module = import_from(folder, "src.metrics.swap")
    # their count_parameters calls np.sum on a generator, which NumPy 2 refuses: the same sum, in Python
    module.count_parameters = lambda model: sum(v.numel() for n, v in model.named_parameters() if "auxiliary" not in n) / 1e3
    theirs = module.SWAP
    init = import_from(folder, "src.utils.utilities").network_weight_gaussian_init

    def measure(name: str) -> Callable:
        def run(x: ProxyInput) -> float:
            opts = check_options(name, options.get(name))
            net = copy.deepcopy(x.backbone).train()
            regular = {"regular": True, "mu": opts.mu, "sigma": opts.sigma} if name == "swap_reg" else {}
            meter = theirs(model=net, inputs=x.inputs(opts.batch_size), device="cpu", seed=0, **regular)
            scores = []
            with global_rng(x.generator):
                for _ in range(opts.repeats if opts.init == "normal" else 1):
                    if opts.init == "normal":
                        init(net)  # once per repeat (their correlation script applies it to every submodule)
                    meter.reinit()
                    scores.append(float(meter.forward()))
                    meter.clear()
            return sum(scores) / len(scores)
        return run

    return {n: measure(n) for n in ("swap", "swap_reg")}


def zico(root: Path, options: dict) -> dict[str, Callable]:
    getzico = import_from(root / "ZiCo", "ZeroShotProxy.compute_zico").getzico

    def run(x: ProxyInput) -> float:
        opts = check_options("zico", options.get("zico"))
        images = x.batch(opts.batch_size * opts.batches)
        loader = [(images[b * opts.batch_size:(b + 1) * opts.batch_size], torch.zeros(opts.batch_size, dtype=torch.long))
                  for b in range(opts.batches)]
        with cpu_only():
            return float(getzico(LossNet(x, advance=True), loader, label_loss))

    return {"zico": run}


def zen(root: Path, options: dict) -> dict[str, Callable]:
    compute = import_from(root / "ZenNAS", "ZeroShotProxy.compute_zen_score", {"ModelLoader": ()}).compute_nas_score

    def run(x: ProxyInput) -> float:
        opts = check_options("zen", options.get("zen"))
        net = copy.deepcopy(x.backbone).train()
        net.forward_pre_GAP = net.forward_features
        with global_rng(x.generator):
            return compute(None, net, opts.mixup_gamma, x.inputs(1).shape[-1], opts.batch_size,
                           opts.repeats)["avg_nas_score"]

    return {"zen": run}


def aznas(root: Path, options: dict) -> dict[str, Callable]:
    compute = import_from(root / "AZ-NAS" / "NB201", "ZeroShotProxy.compute_az_nas_score").compute_nas_score

    def measure(name: str) -> Callable:
        def run(x: ProxyInput) -> float:
            opts = check_options(name, options.get(name))
            net = copy.deepcopy(x.backbone).train()
            net.extract_cell_features = lambda inputs: cell_features(net, inputs)
            loader = [(x.inputs(opts.batch_size), None)] if opts.input == "data" else None
            with cpu_only(), global_rng(x.generator):  # all three components in one call, as theirs computes
                info = compute(net, None, loader, x.inputs(1).shape[-1], opts.batch_size)
            return info[name.removeprefix("az_")]
        return run

    return {n: measure(n) for n in ("az_expressivity", "az_progressivity", "az_trainability")}


def meco(root: Path, options: dict) -> dict[str, Callable]:
    get_score = import_from(root / "MeCo" / "correlation", "NAS_Bench_201", {"models": ("get_cell_based_tiny_net",)}).get_score

    def run(x: ProxyInput) -> float:
        opts = check_options("meco", options.get("meco"))
        net = copy.deepcopy(x.backbone).train()
        if opts.input == "data":
            inputs = x.inputs(1)
        else:
            shape = tuple(x.inputs(1).shape[:-2]) + (opts.image_size or x.inputs(1).shape[-1],) * 2
            inputs = torch.randn(shape, generator=fork(x.generator))
        return get_score(net, inputs, torch.device("cpu"), "meco")

    return {"meco": run}


LOADERS = (zero_cost_nas, swap, zico, zen, aznas, meco)


def load_authors(root: str, options: dict) -> tuple[dict[str, Callable], dict[str, str]]:
    """``({proxy: callable(ProxyInput) -> value}, {proxy: why it has none})``."""
    reasons = {"naswot": NO_NASWOT, "params": "a count, no authors' code", "flops": "a count, no authors' code"}
    if not root:
        return {}, {**reasons, **{n: "no --authors-dir" for n in ALL}}
    found: dict[str, Callable] = {}
    for loader in LOADERS:
        try:
            found.update(loader(Path(root), options))
        except (ImportError, FileNotFoundError, AttributeError) as e:  # a repository absent or changed
            for name in NAMES[loader.__name__]:
                reasons[name] = f"{loader.__name__}: {type(e).__name__}: {e}"
    return {name: quiet(fn) for name, fn in found.items()}, reasons


def quiet(fn: Callable) -> Callable:
    """``fn`` with its deprecation and user warnings silenced (their code predates today's torch)."""
    def run(x: ProxyInput) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(x)
    return run


NAMES = {"zero_cost_nas": ("grad_norm", "snip", "grasp", "fisher", "synflow", "jacob_cov"), "swap": ("swap", "swap_reg"),
         "zico": ("zico",), "zen": ("zen",), "aznas": ("az_expressivity", "az_progressivity", "az_trainability"),
         "meco": ("meco",)}
ALL = tuple(n for names in NAMES.values() for n in names)
