"""Successive halving: rungs, survivors, continuation from the candidate's own checkpoint (bit-identical
to training straight through), per-rung columns, and resume after a kill."""

from __future__ import annotations

import json

import pytest

from unnas.errors import UserError
from unnas.rank import main
from unnas.spec import ArchSpec
from unnas.store import Store
from unnas.strategies.base import Observation, SearchSpace
from unnas.strategies.population import PopulationOptions, SuccessiveHalving, sh_rungs

TINY = ["data.name=fake", "data.image_size=8", "train.batch_size=64", "train.precise_bn=64", "eval.knn_k=20",
        "run.device=cpu", "model.generator=resnet", "--quiet", "--params", "width=8"]


def test_sh_rungs():
    assert sh_rungs([], 9, 3) == [1, 3, 9]
    assert sh_rungs([], 4, 3) == [1, 4]
    assert sh_rungs([], 27, 3) == [1, 3, 9, 27]
    assert sh_rungs([2, 5], 9, 3) == [2, 5]
    with pytest.raises(UserError, match="budget.rungs"):
        sh_rungs([3, 3], 9, 3)
    with pytest.raises(UserError, match="budget.eta"):
        sh_rungs([], 9, 1)
    assert sh_rungs([0, 1, 3], 9, 3) == [0, 1, 3]  # proxy-first: rung 0 trains nothing
    for bad in ([0], [1, 0], [-1, 2]):
        with pytest.raises(UserError, match="budget.rungs"):
            sh_rungs(bad, 9, 3)


def _spec(i):
    return ArchSpec("resnet", {"width": 8 + i}, 0)


def test_successive_halving_keeps_the_best_third_and_never_a_failed_one():
    specs = tuple(_spec(i) for i in range(7))
    sh = SuccessiveHalving(SearchSpace("resnet"), PopulationOptions(specs, (1, 3, 9), 3))
    r0 = sh.propose([])
    assert [p.spec for p in r0] == list(specs) and {p.rung for p in r0} == {0}
    scores = [0.5, 0.9, float("nan"), 0.7, 0.9, 0.1, 0.3]
    obs0 = [Observation(p.spec, 0, s, "done" if s == s else "failed") for p, s in zip(r0, scores)]
    r1 = sh.propose([obs0])  # ceil(7 / 3) = 3: 0.9 (ties by arch_id), 0.9, 0.7
    tied = sorted([specs[1], specs[4]], key=lambda s: s.arch_id)
    assert [p.spec for p in r1] == [*tied, specs[3]] and {p.rung for p in r1} == {1}
    obs1 = [Observation(p.spec, 1, v) for p, v in zip(r1, [0.2, 0.8, 0.6])]
    r2 = sh.propose([obs0, obs1])
    assert [p.spec for p in r2] == [tied[1]] and r2[0].rung == 2
    assert sh.propose([obs0, obs1, [Observation(tied[1], 2, 0.9)]]) == []
    assert sh.propose([obs0]) == r1  # a pure function of the history


def _rows(run_dir):
    with Store(run_dir / "store.sqlite") as s:
        return s.rows()


def test_rungs_continue_from_checkpoints_like_training_straight_through(tmp_path):
    sh = ["--runs-dir", str(tmp_path), "--name", "sh", "--num-archs", "3", "--no-supervised", *TINY,
          "--budget", "sh", "--rungs", "1,2", "--eta", "2", "train.epochs=2"]
    assert main(sh) == 0
    rows = _rows(tmp_path / "sh")
    by_epoch = {}
    for r in rows:
        by_epoch.setdefault(r.metrics["epochs"], []).append(r)
    assert sorted(by_epoch) == [1, 2] and len(by_epoch[1]) == 3 and len(by_epoch[2]) == 2  # ceil(3 / 2)
    best = sorted(by_epoch[1], key=lambda r: (-r.metrics["score"], r.arch_id))[:2]
    assert {r.arch_id for r in by_epoch[2]} == {r.arch_id for r in best}
    assert all(r.metrics["resumed_from_epoch"] == 1 for r in by_epoch[2])  # continued, not from scratch
    assert not list((tmp_path / "sh" / "checkpoints").glob("*/*.pt"))  # cleaned up at the end
    # a survivor's rung-2 result equals training it for the 2-epoch schedule in one go
    fixed = ["--runs-dir", str(tmp_path), "--name", "fixed", "--num-archs", "3", "--no-supervised", "train.epochs=2",
             *TINY]
    assert main(fixed) == 0
    straight = {r.arch_id: r.metrics for r in _rows(tmp_path / "fixed")}
    for r in by_epoch[2]:
        for k in ("score", "objective_acc", "train_loss", "steps", "knn_acc_uses_labels"):
            assert r.metrics[k] == straight[r.arch_id][k], k
    ranking = json.loads((tmp_path / "sh" / "ranking.json").read_text())
    assert ranking["rungs"] == [1, 2]
    cols = ranking["columns"]
    assert cols["rotation@1ep"]["kind"] == "rung" and cols["rotation@2ep"]["epochs"] == 2
    order = [r["arch_id"] for r in ranking["table"]]
    assert set(order[:2]) == {r.arch_id for r in by_epoch[2]}  # survivors first


def test_bad_budget_options_exit_2_and_write_nothing(tmp_path, capsys):
    base = ["--runs-dir", str(tmp_path), "--name", "x", "--num-archs", "2", *TINY]
    for extra, words in ((["--budget", "sh", "--rungs", "3,1"], "budget.rungs"),
                         (["--budget", "sh", "--eta", "1"], "budget.eta"),
                         (["--budget", "sh", "--pretext", "none"], "successive halving"),
                         (["--budget", "sh", "--rungs", "1,2", "train.checkpoint=false"], "train.checkpoint"),
                         (["--budget", "sh", "--rungs", "0,2"], "budget.rungs"),
                         (["--rungs", "a,b"], "--rungs")):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and words in err and "\n" not in err
    assert not (tmp_path / "x").exists()
