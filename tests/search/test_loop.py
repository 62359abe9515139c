"""The search loop: seeded and reproducible, resumable bit-identically, label-free, warm-up,
divergence and bad input."""

import pytest
import torch

from unnas import config
from unnas.data import load_dataset
from unnas.data.core import Split
from unnas.errors import DivergedError, UserError
from unnas.search import run_supernet_search
from unnas.search.darts import DartsOptions
from unnas.search.dmasking import DMaskingOptions
from unnas.search.loop import split_for_search
from unnas.strategies.base import SearchSpace

CASES = {  # method, space, objective, options
    "darts-macro": ("darts", SearchSpace("macro", {"width": 0.125}), "rotation", None),
    "darts2-nb201": ("darts", SearchSpace("nb201", {"width": 0.25}), "rotation", DartsOptions(second_order=True)),
    "dmasking": ("dmasking", SearchSpace("fbnet-macro", {"stem": 4, "channels": [8, 16, 16], "head": 32}),
                 "rotation", DMaskingOptions(resolutions=[1.0, 0.5])),
}


@pytest.fixture(scope="module")
def small():
    cfg = config.load(overrides=["data.subset_per_class=10", "data.image_size=8", "train.epochs=2", "train.batch_size=16",
                                 "train.lr=0.025", "train.grad_clip=5"])
    return cfg, load_dataset(cfg.data)


def _run(small, case, **kw):
    cfg, data = small
    method, space, objective, options = CASES[case]
    return run_supernet_search(method, space, objective, kw.pop("data", data), kw.pop("cfg", cfg), options=options,
                               seed=kw.pop("seed", 3), **kw)


def _strip(history):
    return [{k: v for k, v in h.items() if "seconds" not in k} for h in history]


def _state(ckpt_dir):
    return torch.load(sorted(ckpt_dir.glob("epoch_*.pt"))[-1], weights_only=True)


def test_split_is_seeded_disjoint_and_label_free():
    w, a = split_for_search(10, 0.2, 0)
    assert len(a) == 2 and len(w) == 8 and set(w.tolist()) | set(a.tolist()) == set(range(10))
    assert torch.equal(split_for_search(10, 0.2, 0)[1], a) and not torch.equal(split_for_search(10, 0.2, 1)[1], a)


@pytest.mark.parametrize("case", sorted(CASES))
def test_search_is_reproducible_and_resumes_bit_identically(small, case, tmp_path):
    full = _run(small, case, checkpoint_dir=tmp_path / "full")
    again = _run(small, case)
    assert _strip(full.history) == _strip(again.history) and full.spec == again.spec
    assert full.probabilities == again.probabilities
    assert len(full.history) == 2 and full.history[-1]["arch_loss"] > 0
    assert full.probabilities != full.history[0]["probabilities"]  # the architecture moved in epoch 2

    class Kill(Exception):
        pass

    def die(step, total, info):
        if info["epoch"] == 2:
            raise Kill
    with pytest.raises(Kill):
        _run(small, case, checkpoint_dir=tmp_path / "cut", progress=die)
    resumed = _run(small, case, checkpoint_dir=tmp_path / "cut")
    assert resumed.resumed_from_epoch == 1
    assert _strip(resumed.history) == _strip(full.history) and resumed.probabilities == full.probabilities
    a, b = _state(tmp_path / "full"), _state(tmp_path / "cut")
    assert a["objective"].keys() == b["objective"].keys()
    assert all(torch.equal(a["objective"][k], b["objective"][k]) for k in a["objective"])
    assert full.complexity["params"] > 0 and full.spec.generator == CASES[case][1].generator


def test_rotation_search_reads_no_label(small):
    cfg, data = small
    perm = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))
    shuffled = type(data)(**{**data.__dict__, "train": Split(data.train.images, data.train.labels[perm])})
    a = _run(small, "darts-macro")
    b = _run(small, "darts-macro", data=shuffled)
    assert _strip(a.history) == _strip(b.history) and a.probabilities == b.probabilities


def test_supervised_search_does_read_labels(small):
    cfg, data = small
    perm = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))
    shuffled = type(data)(**{**data.__dict__, "train": Split(data.train.images, data.train.labels[perm])})
    opts = dict(options=None, seed=0)
    a = run_supernet_search("darts", SearchSpace("macro", {"width": 0.125}), "supervised", data, cfg, **opts)
    b = run_supernet_search("darts", SearchSpace("macro", {"width": 0.125}), "supervised", shuffled, cfg, **opts)
    assert a.probabilities != b.probabilities


def test_warmup_epochs_freeze_the_architecture(small):
    cfg, data = small
    space = SearchSpace("macro", {"width": 0.125})
    r = run_supernet_search("darts", space, "rotation", data, cfg, options=DartsOptions(warmup_epochs=1), seed=0)
    h = r.history
    assert not h[0]["arch_trained"] and h[0]["arch_loss"] is None and h[1]["arch_trained"]
    torch.manual_seed(0)
    from unnas.search.loop import make_method

    init = make_method("darts").build("macro", {"width": 0.125}, 1, seed=0).probabilities()
    assert h[0]["probabilities"] == init and h[1]["probabilities"] != init


def test_a_nan_loss_is_a_divergence(small):
    cfg, data = small
    bad = config.replace(cfg, train={"lr": 1e30, "grad_clip": 0.0})
    with pytest.raises(DivergedError):
        run_supernet_search("darts", SearchSpace("macro", {"width": 0.125}), "rotation", data, bad, seed=0)


@pytest.mark.parametrize("method,gen,objective,match", [
    ("darts", "fbnet-macro", "rotation", "--generator"), ("dmasking", "macro", "rotation", "--generator"),
    ("snas", "macro", "rotation", "search method"), ("darts", "macro", "rot", "objective")])
def test_bad_names_are_user_errors(small, method, gen, objective, match):
    cfg, data = small
    with pytest.raises(UserError, match=match):
        run_supernet_search(method, SearchSpace(gen, {}), objective, data, cfg)


def test_colorization_needs_rgb_and_is_refused_on_digits(small):
    cfg, data = small
    with pytest.raises(UserError, match="pretext|colorization|RGB|channels"):
        run_supernet_search("darts", SearchSpace("macro", {"width": 0.125}), "colorization", data, cfg)


@pytest.mark.parametrize("objective", ["rotation", "jigsaw", "colorization", "moco", "supervised"])
def test_every_objective_drives_a_search(objective):
    """The supernet is a Backbone, so every objective wraps it (MoCo's key encoder holds a copy whose
    architecture follows the query's by EMA)."""
    cfg = config.load(overrides=["data.name=fake", "data.image_size=16", "data.subset_per_class=4", "train.epochs=1",
                                 "train.batch_size=8", "moco.queue_size=16"])
    data = load_dataset(cfg.data)
    r = run_supernet_search("dmasking", CASES["dmasking"][1], objective, data, cfg,
                            options=DMaskingOptions(resolutions=[1.0, 0.5]), seed=0)
    h = r.history[-1]
    assert h["arch_trained"] and all(v == v for v in (h["weight_loss"], h["arch_loss"]))
    assert r.spec.generator == "fbnet-macro" and r.probabilities != {}
