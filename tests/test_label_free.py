"""Label-free means no label is read: permuting every label of the dataset leaves every label-free
score of a run bit-identical (while the probes and the supervised reference, which read labels, move)."""

from __future__ import annotations

import json

import torch

from unnas import config
from unnas.analysis import load_run, ranking_of
from unnas.data.core import Split
from unnas.ranking import run_ranking
from unnas.registry import TRAINED_SCORES
from unnas.runner import _DATA_CACHE, data_key, dataset_for, prime_dataset

ARGS = ["data.name=digits", "data.image_size=8", "train.batch_size=32", "train.epochs=1", "train.precise_bn=64",
        "eval.knn_k=10", "run.device=cpu", "run.num_archs=2", "model.generator=resnet", "model.params.width=8",
        "moco.queue_size=256", "eval.probes=knn,linear"]


def _permuted(data, seed: int):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for s in ("train", "val", "test"):
        sp = getattr(data, s)
        out[s] = Split(sp.images, sp.labels[torch.randperm(len(sp), generator=g)])
    return type(data)(data.name, out["train"], out["val"], out["test"], data.num_classes, data.class_names,
                      data.mean, data.std)


def _run(tmp_path, name: str, perm_seed: int | None, extra: list[str]):
    cfg = config.load(None, [*ARGS, *extra, f"run.runs_dir={tmp_path}", f"run.name={name}"])
    real = dataset_for(cfg)
    data = real if perm_seed is None else _permuted(real, perm_seed)
    assert perm_seed is None or not torch.equal(data.train.labels, real.train.labels)
    prime_dataset(data_key(cfg), data)
    try:
        assert run_ranking(cfg, quiet=True) == 0
    finally:
        _DATA_CACHE.clear()  # the next run loads the real labels again
    run = load_run(tmp_path / name)
    rk, _ = ranking_of(run.rows, run.config, n_boot=0)
    return run, rk


def test_permuted_labels_leave_every_label_free_score_bit_identical(tmp_path):
    extra = ["run.pretext=rotation,moco"]
    a, rka = _run(tmp_path, "real", None, extra)
    b, rkb = _run(tmp_path, "permuted", 1, extra)
    assert rka.label_free and set(rka.label_free) == set(rkb.label_free)
    trained = [f"{o}/{t}" for o in ("rotation", "moco") for t in TRAINED_SCORES.names()]
    assert set(trained) <= set(rka.label_free)  # every trained-network score is a label-free column
    for name in rka.label_free:  # objectives (rotation, moco view retrieval), params, flops
        assert list(rka.column(name)) == list(rkb.column(name)), name
    ra = {(r.objective, r.arch_id): r.metrics for r in a.rows}
    rb = {(r.objective, r.arch_id): r.metrics for r in b.rows}
    assert set(ra) == set(rb)
    for key, m in ra.items():
        if key[0] == "supervised":
            continue
        for k in ("score", "objective_acc", "objective_loss", "train_loss", "train_acc", *TRAINED_SCORES.names()):
            assert m[k] == rb[key][k], (key, k)
    # the columns that read labels do move (so this test can fail)
    moved = [n for n in rka.columns if rka.columns[n].uses_labels and list(rka.column(n)) != list(rkb.column(n))]
    assert moved and any(rka.supervised[x] != rkb.supervised[x] for x in rka.supervised)
    ranking = json.loads((tmp_path / "real" / "ranking.json").read_text())
    labels = {n: c["uses_labels"] for n, c in ranking["columns"].items()}
    assert labels["rotation"] is False and labels["moco"] is False and labels["params"] is False
    assert not any(labels[n] for n in trained)
    assert labels["rotation/knn"] is True and labels["moco/linear"] is True
