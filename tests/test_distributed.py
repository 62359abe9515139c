"""Data-parallel training of one candidate: W gloo processes on CPU train like one process at the
same global batch (up to float summation order); one process is the engine bit for bit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from unnas.objectives.base import Objective, accuracy
from unnas.registry import OBJECTIVES

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
TINY = ["data.name=fake", "data.image_size=8", "train.batch_size=64", "train.epochs=2", "train.precise_bn=128",
        "train.lr=0.1", "train.threads=1"]


class PlainSupervised(Objective):
    """Cross-entropy on un-augmented images: its training input is deterministic, so data-parallel
    runs can be compared with one process value by value."""

    name = "plain-supervised"
    uses_labels = True

    def __init__(self, backbone, info, options=None):
        super().__init__(backbone, info, options)
        self.head = torch.nn.Linear(backbone.num_features, info.num_classes)

    def train_input(self, images, generator):
        return self.normalize(images)

    def forward(self, images, labels=None, generator=None):
        logits = self.head(self.backbone.pooled(self.normalize(images)))
        return {"loss": F.cross_entropy(logits, labels), "acc": accuracy(logits, labels),
                "n": torch.tensor(labels.shape[0])}


if "plain-supervised" not in OBJECTIVES:
    OBJECTIVES.register("plain-supervised")(PlainSupervised)


def _setup(objective: str):
    from unnas import config
    from unnas.objectives.base import DataInfo, build_objective
    from unnas.runner import dataset_for
    from unnas.spec import ArchSpec, build

    cfg = config.load(None, TINY)
    data = dataset_for(cfg)
    torch.manual_seed(0)
    obj = build_objective(objective, build(ArchSpec("resnet", {"depths": [1, 1, 1], "width": 8}, 0), 3),
                          DataInfo.of(data))
    return cfg, data, obj


def test_shard_order_takes_each_ranks_share_of_every_global_batch():
    from unnas.distributed import shard_order

    order = torch.arange(10, 20)
    # global batches of 4: [10 11 12 13] [14 15 16 17]; the last 2 do not make a full batch
    assert shard_order(order, 4, 0, 2).tolist() == [10, 11, 14, 15]
    assert shard_order(order, 4, 1, 2).tolist() == [12, 13, 16, 17]
    assert shard_order(order, 4, 0, 1).tolist() == list(range(10, 18))


def test_one_process_equals_the_engine_bit_for_bit(tmp_path):
    from unnas.distributed import train_distributed
    from unnas.engine import train

    cfg, data, a = _setup("rotation")
    ra = train(a, data.train, cfg.train, seed=3)
    _, _, b = _setup("rotation")
    rb = train_distributed(b, data.train, cfg.train, seed=3, checkpoint_dir=tmp_path)
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert [h["loss"] for h in ra.history] == [h["loss"] for h in rb.history]
    assert rb.steps == ra.steps == 2 * (580 // 64)


def _ddp_main(out: str) -> None:
    """Run under torchrun: train with DDP and let rank 0 save the result."""
    import torch.distributed as dist

    from unnas.distributed import train_distributed

    dist.init_process_group("gloo")
    cfg, data, obj = _setup("plain-supervised")
    res = train_distributed(obj, data.train, cfg.train, seed=3, checkpoint_dir=Path(out) / "ckpt")
    if dist.get_rank() == 0:
        torch.save({"state": obj.state_dict(), "loss": [h["loss"] for h in res.history], "steps": res.steps},
                   Path(out) / "ddp.pt")
    dist.destroy_process_group()


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_two_gloo_processes_match_one_process_at_the_same_global_batch(tmp_path):
    from unnas.engine import train

    p = _torchrun(str(Path(__file__)), str(tmp_path))
    assert p.returncode == 0, p.stderr[-3000:]
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)
    cfg, data, ref = _setup("plain-supervised")
    torch.set_num_threads(1)
    r = train(ref, data.train, cfg.train, seed=3)
    assert ddp["steps"] == r.steps
    assert ddp["loss"] == pytest.approx([h["loss"] for h in r.history], rel=1e-4)
    want = ref.state_dict()
    assert set(ddp["state"]) == set(want)
    for k, v in want.items():
        if v.is_floating_point():
            torch.testing.assert_close(ddp["state"][k], v, rtol=1e-3, atol=1e-4, msg=k)
        else:
            assert torch.equal(ddp["state"][k], v), k
    ck = torch.load(sorted((tmp_path / "ckpt").glob("epoch_*.pt"))[-1], weights_only=True)
    assert ck["world_size"] == 2 and len(ck["ranks"]) == 2


@pytest.mark.slow
def test_cli_trains_and_evaluates_one_candidate(tmp_path):
    p = _torchrun("-m", "unnas.distributed", "--generator", "resnet", "--params", "width=8", "--pretext", "rotation",
                  "--data", "fake", "--out", str(tmp_path), "data.image_size=8", "train.epochs=1",
                  "train.batch_size=64", "eval.knn_k=20", "train.precise_bn=64")
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads((tmp_path / "result.json").read_text())
    assert res["metrics"]["world_size"] == 2 and 0 <= res["metrics"]["knn_acc"] <= 1
    assert (tmp_path / "model.pt").is_file()


if __name__ == "__main__":
    _ddp_main(sys.argv[1])
