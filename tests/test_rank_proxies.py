"""``unnas.rank`` with zero-cost proxies, a published reference table and ensembles: no training at
all with ``--pretext none``, no supervised jobs with a table, bad tables refused before any job."""

from __future__ import annotations

import csv
import json
import pickle

import numpy as np
import pytest
import torch
from scipy.stats import rankdata, spearmanr

from unnas.population import sample_population
from unnas.rank import main
from unnas.store import Store

BASE = ["--generator", "macro", "--data", "fake", "--num-archs", "5", "--quiet", "data.image_size=16",
        "run.device=cpu", "train.batch_size=32", "train.precise_bn=32", "eval.knn_k=10"]


def _table(tmp_path, n=5, seed=0, name="table.csv"):
    """A CSV table holding the candidates the run will draw (plus others), accuracies in percent."""
    specs = sample_population("macro", 40, 0, {}, in_channels=3, image_size=16)
    rng = np.random.default_rng(seed)
    path = tmp_path / name
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["structure", "accuracy"])
        for s in specs:
            w.writerow([s.params["arch"], f"{rng.uniform(80, 95):.3f}"])
    return path


def _run(tmp_path, name, *extra):
    code = main(["--runs-dir", str(tmp_path), "--name", name, *BASE, *extra])
    return code, tmp_path / name


def test_proxies_alone_train_nothing_and_agree_with_the_table(tmp_path):
    table = _table(tmp_path)
    code, run = _run(tmp_path, "p", "--pretext", "none", "--proxies", "synflow,naswot,jacob_cov", "--reference",
                     str(table))
    assert code == 0
    with Store(run / "store.sqlite") as st:
        rows = st.rows()
    assert sorted({r.objective for r in rows}) == ["jacob_cov", "naswot", "synflow"] and len(rows) == 15
    assert all(r.status == "done" and r.seconds > 0 and "proxy_seconds" in r.metrics for r in rows)
    assert not (run / "models").exists() and not (run / "checkpoints").exists()  # nothing was trained
    ranking = json.loads((run / "ranking.json").read_text())
    assert ranking["reference"] == {"name": "table.csv", "n": 5}
    assert list(ranking["columns"])[:3] == ["synflow", "naswot", "jacob_cov"]  # the order of --proxies
    ref = {row[0]: float(row[1]) for row in csv.reader(open(table)) if row[0] != "structure"}
    specs = {json.loads(r.spec)["params"]["arch"]: r.arch_id for r in rows}
    by_arch = {r.arch_id: ref[a] for a, r in zip(specs, [next(x for x in rows if x.arch_id == i) for i in specs.values()])}
    for proxy in ("synflow", "naswot", "jacob_cov"):
        got = ranking["agreement"][proxy]["spearman"]["value"]
        vals = {r.arch_id: r.metrics["score"] for r in rows if r.objective == proxy}
        ids = sorted(vals)
        want = spearmanr([vals[i] for i in ids], [by_arch[i] for i in ids]).statistic
        assert got == pytest.approx(want)
    assert ranking["columns"]["synflow"] == {"kind": "proxy", "uses_labels": False, "source": "synflow",
                                             "log_scale": True}


def test_pretext_with_a_table_runs_no_supervised_job_and_ensembles_by_rank(tmp_path):
    table = _table(tmp_path)
    code, run = _run(tmp_path, "e", "--pretext", "rotation", "--proxies", "synflow", "--reference", str(table),
                     "--ensemble", "rotation,synflow,flops", "--ensemble", "logrank:rotation,synflow,flops",
                     "train.epochs=1", "--params", "width=0.125")
    assert code == 0
    with Store(run / "store.sqlite") as st:
        rows = st.rows()
    assert {r.objective for r in rows} == {"rotation", "synflow"}  # no supervised job
    ranking = json.loads((run / "ranking.json").read_text())
    ens = "ensemble(rotation+synflow+flops)"
    assert ranking["primary"] == ens and ranking["columns"][ens]["kind"] == "ensemble"
    table_rows = {r["arch_id"]: r for r in ranking["table"]}
    ids = sorted(table_rows)
    parts = [rankdata([table_rows[i][c] for i in ids]) for c in ("rotation", "synflow", "flops")]
    want = np.mean(parts, axis=0)
    assert [table_rows[i][ens] for i in ids] == pytest.approx(list(want))
    log_ens = "ensemble[logrank](rotation+synflow+flops)"  # AZ-NAS's rule, named with its rule and parts
    assert ranking["columns"][log_ens] == {"kind": "ensemble", "uses_labels": False, "source": "rotation+synflow+flops",
                                           "log_scale": False, "rule": "logrank"}
    assert ranking["columns"][ens]["rule"] == "mean"
    want_log = np.sum([np.log(p / len(ids)) for p in parts], axis=0)
    assert [table_rows[i][log_ens] for i in ids] == pytest.approx(list(want_log))
    assert set(ranking["agreement"]) >= {ens, "rotation", "rotation/knn", "synflow", "params", "flops"}


@pytest.mark.parametrize("content,words", [
    (None, "file not found"),
    ("name,score\n00000000,90\n", "no structure column"),
    ("structure,accuracy\n{a},nan\n", "nan"),
    ("structure,accuracy\n{a},90\n{a},91\n", "duplicate key"),
    (b"pickle", "pickle files are refused"),
    ("structure,accuracy\n00000001,90\n", "absent from the table"),
    ("structure,accuracy\n0000000x,90\n", "malformed key"),
])
def test_bad_tables_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, content, words):
    path = tmp_path / ("t.pkl" if isinstance(content, bytes) else "t.csv")
    arch = sample_population("macro", 1, 0, {}, in_channels=3, image_size=16)[0].params["arch"]
    if isinstance(content, bytes):
        path.write_bytes(pickle.dumps({arch: 0.9}))
    elif content is not None:
        path.write_text(content.format(a=arch))
    code, run = _run(tmp_path, "bad", "--pretext", "none", "--proxies", "naswot", "--reference", str(path))
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: --reference") and words in err and "\n" not in err
    assert not run.exists()


def test_unknown_proxy_and_label_reading_ensemble_are_refused(tmp_path, capsys):
    code, run = _run(tmp_path, "x", "--proxies", "nope")
    assert code == 2 and "unknown proxy 'nope'" in capsys.readouterr().err
    code, run = _run(tmp_path, "x", "--ensemble", "rotation,supervised")
    err = capsys.readouterr().err
    assert code == 2 and "ensembles combine the run's label-free scores" in err and not run.exists()
    code, run = _run(tmp_path, "x", "--ensemble", "median:rotation,flops")
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == "error: --ensemble rule: invalid value 'median'; allowed: logrank, mean" and not run.exists()



BAD_PROXY_OPTIONS = [
    ((), "proxy swap_reg option mu: the size regulariser needs a centre and a width"),
    (("swap_reg.mu=100",), "proxy swap_reg option sigma"),
    (("swap_reg.mu=100", "swap_reg.sigma=0"), "proxy swap_reg option sigma"),
    (("swap_reg.mu=100", "swap_reg.sigma=10", "swap_reg.repeats=0"), "proxy swap option repeats"),
    (("swap_reg.mu=100", "swap_reg.sigma=10", "swap_reg.init=xavier"), "allowed: normal, none"),
]


def test_missing_or_invalid_proxy_options_exit_2_before_any_job(tmp_path, capsys):
    table = str(_table(tmp_path))
    code, run = _run(tmp_path, "ok", "--pretext", "none", "--proxies", "synflow", "--reference", table)
    assert code == 0
    with Store(run / "store.sqlite") as st:
        before = sorted((r.job_id, r.status, r.metrics.get("score")) for r in st.rows())
    assert len(before) == 5
    for options, words in BAD_PROXY_OPTIONS:
        capsys.readouterr()
        # the same folder, one more proxy with bad options: refused before the data, the lock or any job
        code, _ = _run(tmp_path, "ok", "--pretext", "none", "--proxies", "synflow,swap_reg", "--reference", table,
                       *options)
        err = capsys.readouterr().err.strip()
        assert code == 2 and words in err and "\n" not in err, (options, err)
        with Store(run / "store.sqlite") as st:
            assert sorted((r.job_id, r.status, r.metrics.get("score")) for r in st.rows()) == before
        code, fresh = _run(tmp_path, "fresh", "--pretext", "none", "--proxies", "swap_reg", *options)
        assert code == 2 and not fresh.exists()


def test_proxy_jobs_use_the_run_proxy_options_and_loss(tmp_path):
    """What a worker computes is what the run's options ask for (not the proxies' defaults)."""
    import yaml

    from unnas import config as config_mod
    from unnas.jobs import proxy_metrics
    from unnas.runner import dataset_for
    from unnas.spec import ArchSpec

    code, run = _run(tmp_path, "opts", "--pretext", "none", "--proxies", "naswot,grad_norm", "--num-archs", "2",
                     "naswot.batch_size=8", "grad_norm.batch_size=4", "proxy.loss=jigsaw", "run.supervised=false")
    assert code == 0
    cfg = config_mod.from_dict(yaml.safe_load((run / "config.yaml").read_text()))
    # the defaults this run overrode: rotation's loss, naswot on 16 images (the fake split holds fewer than 128)
    defaults = config_mod.replace(cfg, proxy={"loss": "rotation"}, naswot={"batch_size": 16})
    data = dataset_for(cfg)
    with Store(run / "store.sqlite") as st:
        rows = st.rows()
    assert len(rows) == 4 and all(r.status == "done" for r in rows)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what every job of the run used (the sums depend on the thread count)
    try:
        for r in rows:
            spec = ArchSpec.from_json(r.spec)
            want = proxy_metrics(r.objective, spec, data, cfg, r.seed, torch.device("cpu"))["score"]
            assert r.metrics["score"] == want
            assert want != proxy_metrics(r.objective, spec, data, defaults, r.seed, torch.device("cpu"))["score"]
    finally:
        torch.set_num_threads(threads)
