"""Wrong results and silent traps, each pinned by a test that fails without its fix."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from unnas.analysis import build_ranking
from unnas.store import JobRow


def _rows(n: int) -> list[JobRow]:
    out = []
    for i in range(n):
        for obj, v in (("rotation", 0.1 * i), ("supervised", 0.5 + 0.01 * i)):
            out.append(JobRow(f"{obj}{i}", f"a{i}", "{}", "g", obj, 0, "done", {"score": v, "objective_acc": v}))
    return out


def _printed(n: int) -> str:
    from unnas.summary import print_ranking

    buf = io.StringIO()
    print_ranking(build_ranking(_rows(n), n_boot=50), Console(file=buf, width=200))
    return buf.getvalue()


def test_few_candidates_warn_that_the_statistics_mean_nothing():
    from unnas.eval.correlation import MIN_CANDIDATES

    assert MIN_CANDIDATES == 5
    assert "[+1.000, +1.000]" in _printed(3)  # the collapsed interval the warning is about
    assert "fewer than 5" in _printed(3)
    assert "warning" not in _printed(MIN_CANDIDATES)


def _digits_objective(name: str):
    import torch

    from unnas import config
    from unnas.data import load_dataset
    from unnas.objectives.base import DataInfo, build_objective, objective_class
    from unnas.population import sample_population
    from unnas.spec import build

    data = load_dataset(config.load().data)
    info = DataInfo.of(data)
    spec = sample_population("resnet", 1, 0)[0]
    torch.manual_seed(0)
    backbone = build(spec, objective_class(name).input_channels(data.channels))
    return build_objective(name, backbone, info, None), data.train.images[:256]


def test_a_fresh_moco_loss_is_refused_for_gradient_proxies():
    import pytest
    import torch
    from unnas.eval.proxies.base import ProxyInput, compute_proxy

    from unnas import config
    from unnas.errors import UserError
    from unnas.ranking import check_scores

    moco, images = _digits_objective("moco")
    assert moco(images, None, torch.Generator().manual_seed(0))["loss"].item() == 0.0  # empty queue: no negatives
    for proxy in ("grad_norm", "snip", "fisher", "zico"):
        with pytest.raises(UserError, match="proxy.loss: the loss of an untrained moco is constant"):
            compute_proxy(proxy, ProxyInput(moco, images, torch.Generator().manual_seed(0)))
    with pytest.raises(UserError, match="proxy.loss"):
        check_scores(config.load(None, ["run.proxies=snip", "proxy.loss=moco"]))
    check_scores(config.load(None, ["run.proxies=synflow", "proxy.loss=moco"]))  # synflow reads no loss
    rotation, _ = _digits_objective("rotation")
    assert compute_proxy("grad_norm", ProxyInput(rotation, images, torch.Generator().manual_seed(0))) > 0


def test_dotted_overrides_after_params_are_config_overrides():
    from unnas import config
    from unnas.cli import parse_command
    from unnas.rank import options_to_config, parser

    a = parse_command(parser(), ["--params", "k=4", "train.epochs=1", "nodes=6"])
    assert a.params == ["k=4", "nodes=6"] and a.overrides == ["train.epochs=1"]
    cfg = config.load(a.config, a.overrides, base=options_to_config(a))
    assert cfg.train.epochs == 1 and dict(cfg.model.params) == {"k": 4, "nodes": 6}


def test_proxies_are_refused_on_clips_before_any_job():
    import pytest

    from unnas import config
    from unnas.errors import UserError
    from unnas.objectives.base import DataInfo
    from unnas.ranking import check_proxies_kind

    cfg = config.load(None, ["run.pretext=none", "run.proxies=synflow,naswot"])
    clips = DataInfo(1, 10, (16, 16), (0.3,), (0.2,), frames=8)
    with pytest.raises(UserError) as e:
        check_proxies_kind(cfg, clips)
    assert str(e.value) == ("--proxies: zero-cost proxies work on image batches, and this dataset holds video clips "
                            "of 8 frames: synflow,naswot; allowed: --pretext arrow-of-time, clip-moco, clip-rotation, "
                            "temporal-order (with --proxies none)")
    check_proxies_kind(cfg, DataInfo(1, 10, (16, 16), (0.3,), (0.2,)))  # images: fine


def _proxy_rows(name: str, values: dict, ref: dict) -> list[JobRow]:
    rows = [JobRow(f"s-{a}", a, "{}", "g", "supervised", 0, "done", {"objective_acc": v}) for a, v in ref.items()]
    for a, vs in values.items():
        for seed, v in enumerate(vs):
            rows.append(JobRow(f"{name}-{a}-{seed}", a, "{}", "g", name, seed, "done", {"score": v}))
    return rows


def test_log_scaled_proxies_are_averaged_and_correlated_in_decades():
    from unnas.analysis import ranking_of

    # a1's two seeds: 1e2 and 1e6 -> geometric mean 1e4 (the raw mean would be 5.0005e5)
    values = {"a1": [1e2, 1e6], "a2": [1e5, 1e5], "a3": [1e6, 1e6]}
    rk, _ = ranking_of(_proxy_rows("synflow", values, {"a1": 0.1, "a2": 0.2, "a3": 0.3}),
                       {"run": {"proxies": "synflow"}}, n_boot=20)
    assert rk.column("synflow").tolist() == [4.0, 5.0, 6.0]
    assert abs(rk.agreement["synflow"]["pearson"]["value"] - 1.0) < 1e-12  # log10 values 4, 5, 6 lie on a line with 0.1 .. 0.3


def test_a_non_finite_proxy_value_ranks_last_and_is_counted():
    import math

    from unnas.analysis import ranking_of

    # scores rank a5 > a1 > a2 > a4 > a3 (a3: -inf, a singular NASWOT kernel); reference ranks
    # a5 > a3 > a1 > a2 > a4: d = (1, 1, -3, 1, 0), rho = 1 - 6 * 12 / (5 * 24) = 0.4 (dropping a3 gives 1)
    values = {"a1": [3.0], "a2": [2.0], "a3": [-math.inf], "a4": [1.0], "a5": [4.0]}
    ref = {"a1": 0.5, "a2": 0.4, "a3": 0.55, "a4": 0.3, "a5": 0.6}
    rk, _ = ranking_of(_proxy_rows("naswot", values, ref), {"run": {"proxies": "naswot"}}, n_boot=50)
    ag = rk.agreement["naswot"]
    assert ag["n"] == 5 and ag["n_nonfinite"] == 1
    assert abs(ag["spearman"]["value"] - 0.4) < 1e-12
    assert math.isnan(ag["pearson"]["value"])  # last place is a rank, not a value
    assert [r["arch_id"] for r in rk.table()][-1] == "a3"
    assert "naswot: 1 candidate(s) with a non-finite value, ranked last" in _printed_rk(rk)


def _printed_rk(rk) -> str:
    from unnas.summary import print_ranking

    buf = io.StringIO()
    print_ranking(rk, Console(file=buf, width=200))
    return buf.getvalue()


def test_a_non_finite_proxy_job_is_stored_as_minus_infinity(monkeypatch):
    import math

    import unnas.eval.proxies.base as base

    from unnas import config
    from unnas.data import load_dataset
    from unnas.jobs import proxy_metrics
    from unnas.population import sample_population

    def singular(name, x, options=None):
        raise base.NonFiniteProxy(name, -math.inf)

    monkeypatch.setattr(base, "compute_proxy", singular)
    cfg = config.load()
    m = proxy_metrics("naswot", sample_population("resnet", 1, 0)[0], load_dataset(cfg.data), cfg, 0, "cpu")
    assert m["score"] == -math.inf and m["nonfinite"] == "-inf" and m["params"] > 0


def test_params_and_flops_are_correlated_in_decades():
    """Sizes spanning decades: the reference rises with log10(params), so Pearson's r is 1 on log10
    values (it was 0.8 on the raw counts); Spearman is the same either way."""
    sizes = [1e3, 1e4, 1e5, 1e6, 1e7]
    rows = []
    for i, n in enumerate(sizes):
        acc = 0.5 + 0.05 * i
        metrics = {"objective_acc": acc, "score": acc, "params": n, "flops": 10 * n}
        rows += [JobRow(f"s{i}", f"a{i}", "{}", "g", "supervised", 0, "done", metrics),
                 JobRow(f"r{i}", f"a{i}", "{}", "g", "rotation", 0, "done", metrics)]
    rk = build_ranking(rows, n_boot=20)
    for b in ("params", "flops"):
        assert rk.agreement[b]["pearson"]["value"] == pytest.approx(1.0)
        assert rk.agreement[b]["spearman"]["value"] == pytest.approx(1.0)
