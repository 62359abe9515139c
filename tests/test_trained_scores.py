"""Trained-network scores as ranking columns: stored raw in the row, oriented in the column, selectable
with --score, usable in --ensemble, refused with one line when unknown."""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml

from unnas.rank import main
from unnas.scores import build_ranking
from unnas.store import JobRow
from unnas.summary import chance_verdict

TINY = ["data.image_size=8", "data.subset_per_class=8", "train.precise_bn=0", "--data", "fake", "--generator",
        "resnet", "--steps", "2", "--batch-size", "16", "--quiet", "--params", "depths=[1]", "--num-archs", "3"]


def _rows():
    rows = []
    for i, (acc, align, sotl, alpha) in enumerate([(0.9, 0.1, 5.0, 1.1), (0.5, 0.4, 9.0, 3.0), (0.7, 0.2, 7.0, 0.8)]):
        m = {"score": 0.3, "objective_acc": 0.3, "alignment": align, "sotl_e": sotl, "alpha_req": alpha}
        rows.append(JobRow(f"r{i}", f"a{i}", "{}", "g", "rotation", 0, "done", m))
        rows.append(JobRow(f"s{i}", f"a{i}", "{}", "g", "supervised", 0, "done", {"objective_acc": acc}))
    return rows


def test_columns_are_oriented_so_that_higher_is_better():
    rk = build_ranking(_rows(), n_boot=0, primary="alignment")
    assert rk.columns["rotation/alignment"].kind == "trained" and not rk.columns["rotation/sotl_e"].uses_labels
    assert list(rk.column("rotation/alignment")) == [-0.1, -0.4, -0.2]
    assert list(rk.column("rotation/sotl_e")) == [-5.0, -9.0, -7.0]
    assert list(rk.column("rotation/alpha_req")) == pytest.approx([-0.1, -2.0, -0.2])
    assert "rotation/rankme" not in rk.columns  # no row holds it
    assert rk.primary == "rotation/alignment"
    # lower alignment / SoTL-E went with higher accuracy in these rows: rho = +1
    assert rk.agreement["rotation/alignment"]["spearman"]["value"] == pytest.approx(1.0)
    assert rk.agreement["rotation/sotl_e"]["spearman"]["value"] == pytest.approx(1.0)


def test_score_and_ensemble_select_trained_columns(tmp_path, capsys):
    assert main(["--runs-dir", str(tmp_path), "--name", "r", *TINY, "--score", "rankme",
                 "--ensemble", "rotation/sotl_e,flops"]) == 0
    out = capsys.readouterr().out
    assert "ensemble(rotation/sotl_e+flops) (label-free) against supervised: Spearman rho" in out
    assert (tmp_path / "r" / "agreement.png").is_file()  # the report draws the trained-network scores
    ranking = json.loads((tmp_path / "r" / "ranking.json").read_text())
    cols = ranking["columns"]
    for name in ("rankme", "alpha_req", "alignment", "uniformity", "heldout_loss", "sotl_e"):
        assert cols[f"rotation/{name}"] == {"kind": "trained", "uses_labels": False, "source": "rotation",
                                            "log_scale": False}
        assert ranking["agreement"][f"rotation/{name}"]["n"] == 3
    assert ranking["primary"] == "ensemble(rotation/sotl_e+flops)"
    assert yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())["eval"]["score"] == "rankme"


@pytest.mark.parametrize("args, field", [(["--score", "rank_me"], "--score"),
                                         (["--ensemble", "rotation/nope,flops"], "--ensemble"),
                                         (["--ensemble", "moco/rankme,flops"], "--ensemble")])
def test_unknown_trained_score_is_one_line_exit_2(tmp_path, capsys, args, field):
    code = main(["--runs-dir", str(tmp_path / "runs"), *TINY, *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: ") and field in err
    assert not list(tmp_path.rglob("store.sqlite"))


def _ranking(scores, accs, n_boot=200):
    rows = []
    for i, (s, a) in enumerate(zip(scores, accs)):
        rows.append(JobRow(f"r{i}", f"a{i}", "{}", "g", "rotation", 0, "done", {"score": s, "objective_acc": s}))
        rows.append(JobRow(f"s{i}", f"a{i}", "{}", "g", "supervised", 0, "done", {"objective_acc": a}))
    return build_ranking(rows, n_boot=n_boot, seed=0)


def test_terminal_says_whether_the_interval_excludes_chance():
    accs = [0.1 * i for i in range(10)]
    agree = chance_verdict(_ranking([0.05 * i for i in range(10)], accs))
    assert agree.startswith("rotation (label-free) against supervised: Spearman rho +1.000")
    assert "the interval excludes 0, so the ranking agrees with supervised beyond chance" in agree
    against = chance_verdict(_ranking([-a for a in accs], accs))
    assert "excludes 0, so the ranking disagrees" in against
    noise = chance_verdict(_ranking([0.3, 0.9, 0.1, 0.5, 0.7, 0.2, 0.8, 0.4, 0.0, 0.6], accs))
    assert "the interval includes 0, so this run cannot tell its ranking from chance" in noise
    assert "no interval" in chance_verdict(_ranking([0.05 * i for i in range(10)], accs, n_boot=0))


@pytest.mark.parametrize("name, data_cfg, spec", [
    ("rotation", {"name": "fake", "image_size": 8}, ("resnet", {"depths": [1], "width": 8})),
    ("moco", {"name": "fake", "image_size": 8}, ("resnet", {"depths": [1], "width": 8})),
    ("colorization", {"name": "fake", "image_size": 8}, ("resnet", {"depths": [1], "width": 8})),
    ("clip-moco", {"name": "moving-digits", "image_size": 16, "frames": 4, "test_fraction": 0.02},
     ("s3d", {"width": 0.0625, "stem": "small"})),
])
def test_every_objective_gives_finite_trained_scores_and_reused_features_change_nothing(name, data_cfg, spec):
    from unnas.eval.features import extract_features
    from unnas.eval.trained import trained_scores

    from unnas.config import DataConfig
    from unnas.data import load_dataset
    from unnas.jobs import trained_input
    from unnas.objectives.base import DataInfo, build_objective, objective_class
    from unnas.spec import ArchSpec, build

    data = load_dataset(DataConfig(subset_per_class=4, **data_cfg))
    torch.manual_seed(0)
    backbone = build(ArchSpec(*spec, 0), objective_class(name).input_channels(data.channels))
    obj = build_objective(name, backbone, DataInfo.of(data))
    dev = torch.device("cpu")
    a = trained_input(obj, data.test, [[2.0, 1.0]], 0.5, 16, dev)
    b = trained_input(obj, data.test, [[2.0, 1.0]], 0.5, 16, dev, extract_features(obj, data.test.images, 16, dev))
    assert torch.equal(a.features, b.features) and all(torch.equal(u, v) for u, v in zip(a.views, b.views))
    assert a.views[0].shape == a.views[1].shape and not torch.equal(*a.views)  # two different augmentations
    scores = trained_scores(a)
    assert all(math.isfinite(v) for k, v in scores.items() if k != "alpha_req"), scores
    assert scores["sotl_e"] == 3.0 and scores["heldout_loss"] == 0.5 and scores["rankme"] >= 1.0


def test_default_score_is_each_objectives_measured_choice():
    from unnas import config as config_mod
    from unnas.config import Config
    from unnas.objectives.base import OBJECTIVES, default_score
    from unnas.ranking import with_score
    from unnas.registry import TRAINED_SCORES

    def resolved(pretext, score="default", proxies="", budget="fixed"):
        cfg = config_mod.replace(Config(), run={"pretext": pretext, "proxies": proxies}, eval={"score": score},
                                 budget={"kind": budget})
        return with_score(cfg).eval.score

    assert Config().eval.score == "default"
    assert resolved("rotation") == "rankme"
    assert resolved("rotation,jigsaw") == "rankme"  # the first objective decides, as for every --score
    assert resolved("moco") == "rankme"
    assert resolved("rotation", budget="sh") == "pretext"  # the rungs choose survivors by the objective's score
    assert resolved("jigsaw,rotation") == "pretext"  # not measured: its own held-out score
    assert resolved("none", proxies="synflow") == "pretext"  # no objective: the first proxy ranks
    assert resolved("rotation", "knn") == "knn" and resolved("rotation", "pretext") == "pretext"
    assert default_score("an-unregistered-plugin") == "pretext"
    from unnas.rank import parser

    helptext = " ".join(parser().format_help().split())
    for name in OBJECTIVES.names():  # every choice is a column the objective's jobs write, and --help names it
        assert default_score(name) in ("pretext", *TRAINED_SCORES.names()), name
        if default_score(name) != "pretext":
            assert f"{default_score(name)} for" in helptext and name in helptext.split("own held-out score otherwise")[0]


def test_a_stored_default_ranks_by_the_first_objectives_choice():
    assert build_ranking(_rows(), n_boot=0, primary="default").primary == "rotation"  # no row holds rankme
    with_rankme = [JobRow(r.job_id, r.arch_id, r.spec, r.generator, r.objective, r.seed, r.status,
                          {**r.metrics, "rankme": 1.0 + i} if r.objective == "rotation" else r.metrics)
                   for i, r in enumerate(_rows())]
    assert build_ranking(with_rankme, n_boot=0, primary="default").primary == "rotation/rankme"
    jig = [JobRow(r.job_id, r.arch_id, r.spec, r.generator, "jigsaw" if r.objective == "rotation" else r.objective,
                  r.seed, r.status, r.metrics) for r in with_rankme]
    assert build_ranking(jig, n_boot=0, primary="default").primary == "jigsaw"


def test_a_run_without_score_ranks_rotation_by_rankme_and_stores_the_choice(tmp_path, capsys):
    assert main(["--runs-dir", str(tmp_path), "--name", "r", *TINY]) == 0
    out = capsys.readouterr().out
    assert "rotation/rankme (label-free) against supervised: Spearman rho" in out
    assert json.loads((tmp_path / "r" / "ranking.json").read_text())["primary"] == "rotation/rankme"
    assert yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())["eval"]["score"] == "rankme"
