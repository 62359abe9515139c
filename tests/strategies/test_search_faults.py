"""A strategy search (``python -m unnas.search --strategy evolution|lanas``) SIGKILLed at seeded points
(mid-training, half-way through a checkpoint write, inside a store commit) and rerun: it resumes from
the store, commits no candidate twice, and ends with the rows and the proposals of an uninterrupted
search. The crash machinery is :func:`test_faults.crash_main`'s."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import test_faults as faults  # noqa: E402 - tests/ holds the shared crash machinery

from unnas.runner import stored_results  # noqa: E402

TINY = ["--generator", "macro", "--params", "width=0.125", "--pretext", "rotation", "--data", "fake", "--quiet",
        "--executor", "local", "--epochs", "2", "data.image_size=8", "train.batch_size=64", "train.precise_bn=64",
        "eval.knn_k=20", "run.device=cpu"]
STRATEGIES = {
    "evolution": ["--strategy", "evolution", "--num-archs", "4", "evolution.population=2", "evolution.tournament=2"],
    "lanas": ["--strategy", "lanas", "--num-archs", "4", "lanas.init_samples=2", "lanas.height=2", "lanas.refit_every=1"],
}


def _argv(run_dir: Path, strategy: str) -> list[str]:
    return ["--runs-dir", str(run_dir.parent), "--name", run_dir.name, "--seed", "5", *TINY, *STRATEGIES[strategy]]


def _forked(argv: list[str], crash: tuple[str, int] | None = None) -> int:
    """The search in a forked child (a real process that SIGKILLs itself at ``crash``)."""
    return faults.run_forked(argv, crash, entry="unnas.search_cli")


def _trajectory(run_dir: Path) -> list[tuple[str, float]]:
    out = json.loads((run_dir / "search.json").read_text())
    return [(t["arch_id"], t["score"]) for t in out["trajectory"]]


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_search_killed_at_seeded_points_resumes_with_the_uninterrupted_proposals(tmp_path, strategy):
    from unnas.search_cli import main

    ref_dir = tmp_path / "ref"
    assert main(_argv(ref_dir, strategy)) == 0  # uninterrupted, in this process
    ref = stored_results(ref_dir / "store.sqlite")
    assert len(ref) == 4 and all(s == "done" for s, _ in ref.values())  # 4 candidates, one rotation job each
    rng = np.random.default_rng(11 if strategy == "lanas" else 7)
    # 4 jobs of 2 epochs (each a few steps, one checkpoint per epoch): every point is reached
    plan = [("step", int(rng.integers(3, 9))), ("ckpt", int(rng.integers(1, 4))), ("store", int(rng.integers(1, 3)))]
    run_dir = tmp_path / "killed"
    kills = 0
    for point, n in plan:
        kills += _forked(_argv(run_dir, strategy), crash=(point, n)) == -9
        if (run_dir / "store.sqlite").exists():
            got = stored_results(run_dir / "store.sqlite")
            assert set(got) <= set(ref) and all(got[j] == ref[j] for j in got)  # every stored row is final
    assert kills == len(plan)
    assert _forked(_argv(run_dir, strategy)) == 0
    assert stored_results(run_dir / "store.sqlite") == ref  # none lost, none extra, bit-identical metrics
    events = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    committed = [e["job_id"] for e in events if e["event"] == "job"]
    assert sorted(committed) == sorted(ref)  # each candidate's job committed exactly once over all the runs
    assert _trajectory(run_dir) == _trajectory(ref_dir)  # the same proposals, in order, with the same scores
