"""The default layout uses every core: workers x threads from the core count and the jobs."""

from __future__ import annotations

import pytest

from unnas import config
from unnas.executors import available_cores, resolve_executor, resolve_parallelism, run_layout, worker_modules
from unnas.objectives.base import Objective
from unnas.registry import OBJECTIVES

TINY = ["data.name=fake", "data.image_size=8", "train.batch_size=64", "train.epochs=1", "train.precise_bn=64",
        "eval.knn_k=20", "run.device=cpu", "model.generator=resnet"]


def cfg_with(*overrides: str):
    return config.load(None, [*TINY, *overrides])


@pytest.mark.parametrize("overrides, cores, jobs, want", [
    ([], 2, 16, (2, 1)),  # more jobs than cores: one single-threaded worker per core
    ([], 2, None, (2, 1)),  # unknown number of jobs: as many
    ([], 4, 1, (1, 4)),  # one job: all cores as its threads
    ([], 8, 3, (3, 2)),  # fewer jobs than cores: the spare cores as threads
    ([], 1, 16, (1, 1)),
    (["run.threads_per_worker=2"], 8, 10, (4, 2)),  # fixed threads: cores // threads workers
    (["run.threads_per_worker=2"], 8, 3, (3, 2)),
    (["train.threads=3"], 8, 10, (2, 3)),
    (["run.workers=3"], 8, 10, (3, 2)),  # fixed workers: the cores shared among them
    (["run.device=cuda"], 8, 10, (1, 1)),  # one GPU: one job at a time
])
def test_auto_uses_every_core(overrides, cores, jobs, want):
    cfg = cfg_with(*overrides)
    assert cfg.run.executor == "auto"  # the default
    assert resolve_parallelism(cfg, cores=cores, jobs=jobs) == want


def test_auto_is_a_pool_for_several_workers_else_local():
    cfg = cfg_with()
    assert resolve_executor(cfg, 2) == "pool" and resolve_executor(cfg, 1) == "local"
    assert resolve_executor(cfg_with("run.executor=local"), 4) == "local"
    assert resolve_executor(cfg_with("run.executor=ray"), 1) == "ray"


class _Probe(Objective):
    name = "layout-probe"


def _register_probe(monkeypatch, module: str) -> None:
    monkeypatch.setattr(_Probe, "__module__", module)
    monkeypatch.setitem(OBJECTIVES._items, "layout-probe", _Probe)
    monkeypatch.setitem(OBJECTIVES._meta, "layout-probe", {})


def test_workers_import_the_modules_of_the_runs_own_components(monkeypatch, tmp_path):
    (tmp_path / "my_lab").mkdir()
    (tmp_path / "my_lab" / "objectives.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))  # importable by every process that shares sys.path
    _register_probe(monkeypatch, "my_lab.objectives")
    cfg = cfg_with("run.pretext=layout-probe,rotation")
    assert worker_modules(cfg) == ("my_lab.objectives",)  # built-in rotation / resnet need nothing
    ex, workers, threads, plugins = run_layout(cfg, jobs=8, plugins=("other",), cores=2)
    assert (ex, workers, threads) == ("pool", 2, 1) and plugins == ("other", "my_lab.objectives")


@pytest.mark.parametrize("module", ["__main__", "nowhere_on_the_path.objectives"])
def test_a_component_workers_cannot_import_keeps_auto_in_this_process(monkeypatch, module):
    _register_probe(monkeypatch, module)  # e.g. a script's own objective
    cfg = cfg_with("run.pretext=layout-probe")
    assert run_layout(cfg, jobs=8, cores=2) == ("local", 1, 2, ())
    assert run_layout(cfg_with("run.pretext=layout-probe", "run.executor=pool"), jobs=8, cores=2)[:3] == ("pool", 2, 1)


def test_run_header_names_the_layout_and_the_precision(tmp_path, capsys):
    from unnas.rank import main

    argv = ["--runs-dir", str(tmp_path), "--name", "r", "--num-archs", "1", "--no-supervised", "--quiet", *TINY]
    assert main(argv) == 0
    out = capsys.readouterr().out
    cores = available_cores()
    precision = config.from_dict(__import__("yaml").safe_load((tmp_path / "r" / "config.yaml").read_text()))
    assert precision.train.precision in ("float32", "bfloat16")  # resolved, never "auto", in the stored config
    assert (f"[executor local (auto, {cores} cores), {cores} thread(s) per job, {precision.train.precision}]"
            in " ".join(out.split()))


@pytest.mark.parametrize("overrides, want", [
    (["run.pretext=rotation", "train.precision=bfloat16"], "bfloat16"),
    (["run.pretext=rotation", "train.precision=bfloat16", "run.proxies=synflow"], "bfloat16, proxies full precision"),
    (["run.pretext=none", "run.supervised=false", "train.precision=bfloat16", "run.proxies=synflow,naswot"],
     "proxies full precision"),
    (["run.pretext=none", "run.supervised=true", "train.precision=float32", "run.proxies=naswot"],
     "float32, proxies full precision"),  # the supervised reference still trains
    (["run.pretext=rotation", "train.precision=float32", "run.proxies=params,flops"], "float32"),  # counted, not jobs
])
def test_run_header_says_what_the_jobs_compute_in(overrides, want):
    from unnas.session import job_precisions

    assert job_precisions(cfg_with(*overrides)) == want


def test_a_proxy_only_run_header_says_nothing_trains(tmp_path, capsys):
    from unnas.rank import main

    argv = ["--runs-dir", str(tmp_path), "--name", "p", "--num-archs", "1", "--no-supervised", "--quiet",
            "--pretext", "none", "--proxies", "synflow", *TINY]
    assert main(argv) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "1 candidates x 1 seed(s); no training [executor" in out and "per job, proxies full precision]" in out
