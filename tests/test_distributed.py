"""Data-parallel training of one candidate: W gloo processes on CPU train like one process at the
same global batch (up to float summation order); one process is the engine bit for bit.

The W-process run and the one-process run are compared in float64. In float32 the summation
order alone (per-rank partial sums) changes the weights by ~1e-7 per step, and this training
amplifies such differences: perturbing the initial weights of one float32 process by a relative
1e-7 moves its weights by 2.5e-4 after the 18 steps of the test. In float64 the same runs agree to
~1e-15, so the comparison is tight and tests the algorithm, not the rounding."""

from __future__ import annotations

import json
import os
import signal
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
    """Cross-entropy on un-augmented images in float64: its training input is deterministic, so
    data-parallel runs can be compared with one process value by value."""

    name = "plain-supervised"
    uses_labels = True

    def __init__(self, backbone, info, options=None):
        super().__init__(backbone, info, options)
        self.head = torch.nn.Linear(backbone.num_features, info.num_classes)
        self.double()

    def normalize(self, images):
        return super().normalize(images).double()

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


def test_the_data_parallel_path_is_the_engine_loop_with_its_sampler_and_progress():
    # everything the engine's loop does reaches the data-parallel path: here the epoch sampler and
    # the progress callback, which a separate copy of the loop did not have
    from unnas.eval.samplers import class_balanced

    from unnas.distributed import train_distributed
    from unnas.engine import train

    cfg, data, a = _setup("rotation")
    seen_a, seen_b = [], []
    train(a, data.train, cfg.train, seed=3, sampler=class_balanced, progress=lambda *x: seen_a.append(x[:2]))
    _, _, b = _setup("rotation")
    train_distributed(b, data.train, cfg.train, seed=3, sampler=class_balanced,
                      progress=lambda *x: seen_b.append(x[:2]))
    assert seen_a == seen_b == [(i + 1, 2 * (580 // 64)) for i in range(2 * (580 // 64))]
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    _, _, c = _setup("rotation")
    train_distributed(c, data.train, cfg.train, seed=3)  # the default instance-balanced order differs
    assert not torch.equal(c.state_dict()["backbone.stem.0.weight"], sb["backbone.stem.0.weight"])


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


def _torchrun(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Two processes under torchrun; on a timeout the whole process group is killed (a hung
    collective would otherwise leave the workers behind) and the test fails."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"torchrun did not finish within {timeout:g} s: {err[-2000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def test_two_gloo_processes_match_one_process_at_the_same_global_batch(tmp_path):
    from unnas.engine import train

    p = _torchrun(str(Path(__file__)), str(tmp_path))
    assert p.returncode == 0, p.stderr[-3000:]
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)
    cfg, data, ref = _setup("plain-supervised")
    torch.set_num_threads(1)
    r = train(ref, data.train, cfg.train, seed=3)
    assert ddp["steps"] == r.steps
    assert ddp["loss"] == pytest.approx([h["loss"] for h in r.history], rel=1e-12)
    want = ref.state_dict()
    assert set(ddp["state"]) == set(want)
    for k, v in want.items():
        if v.is_floating_point():
            assert ddp["state"][k].dtype == torch.float64, k
            torch.testing.assert_close(ddp["state"][k], v, rtol=1e-10, atol=1e-12, msg=k)
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
    assert res["metrics"]["world_size"] == 2 and 0 <= res["metrics"]["knn_acc_uses_labels"] <= 1
    assert (tmp_path / "model.pt").is_file()


MOCO = TINY + ["train.steps=1", "train.precision=float32", "train.precise_bn=64", "train.channels_last=false",
               "moco.bn_splits=2", "eval.knn_k=20"]
MOCO_SPEC = ("resnet", {"depths": [1, 1], "width": 8}, 0)


def _moco_main(out: str) -> None:
    """Run under torchrun: one MoCo step with DDP, then rank 0 evaluates and writes its files, as
    ``python -m unnas.distributed`` does. Records every rank's batch, generator state, initial
    key-encoder stem and the key encoder's first BN statistics."""
    import torch.distributed as dist

    from unnas import config
    from unnas.distributed import train_and_evaluate
    from unnas.objectives.base import DataInfo, build_objective
    from unnas.runner import dataset_for
    from unnas.spec import ArchSpec, build

    dist.init_process_group("gloo")
    cfg = config.load(None, MOCO)
    data = dataset_for(cfg)
    spec = ArchSpec(*MOCO_SPEC)
    torch.manual_seed(0)
    obj = build_objective("moco", build(spec, 3), DataInfo.of(data), cfg.objectives["moco"])
    seen = {}

    def record(module, args):
        images, _, generator = args
        seen.setdefault("images", images.clone())
        seen.setdefault("generator", generator.get_state())

    obj.register_forward_pre_hook(record)
    stem = obj.key_encoder["backbone"].stem[0].weight.detach().clone()
    train_and_evaluate(obj, data, cfg, spec, Path(out), seed=3)
    bn = obj.key_encoder["backbone"].stem[1]
    mine = {**seen, "stem": stem, "mean": bn.running_mean.clone(), "var": bn.running_var.clone()}
    ranks = [None, None]
    dist.all_gather_object(ranks, mine)
    if dist.get_rank() == 0:
        torch.save(ranks, Path(out) / "ranks.pt")
    dist.destroy_process_group()


def test_two_process_moco_shuffles_keys_across_per_rank_bn_and_evaluates_on_rank_0(tmp_path):
    import torch.nn.functional as F
    from unnas.moco.augment import two_views

    from unnas import config
    from unnas.jobs import training_metrics
    from unnas.objectives.base import DataInfo, build_objective
    from unnas.runner import dataset_for
    from unnas.spec import ArchSpec, build

    p = _torchrun(str(Path(__file__)), "moco", str(tmp_path), timeout=240)
    assert p.returncode == 0, p.stderr[-3000:]
    cfg = config.load(None, MOCO)
    data = dataset_for(cfg)

    # 1. the reference's shuffle BN: each rank's key encoder normalizes its own share of the keys,
    # drawn from both ranks by one permutation, with split BN (2 groups) inside the rank
    ranks = torch.load(tmp_path / "ranks.pt", weights_only=True)
    obj = build_objective("moco", build(ArchSpec(*MOCO_SPEC), 3), DataInfo.of(data), cfg.objectives["moco"])
    b = 32  # the global batch of 64 over 2 ranks
    keys, gens = [], []
    for r in ranks:
        g = torch.Generator()
        g.set_state(r["generator"])
        _, v2 = two_views(r["images"], obj.hp.views, g)
        keys.append(obj._normalize_unit(v2))
        gens.append(g)
    perm = torch.randperm(2 * b, generator=gens[0])  # rank 0's permutation, broadcast to both
    everything = torch.cat(keys)
    for rank, r in enumerate(ranks):
        y = F.conv2d(everything[perm[rank * b:(rank + 1) * b]], r["stem"], padding=1).double()
        groups = [y[g::2] for g in range(2)]  # split BN: sample n in sub-batch n % 2
        mean = 0.1 * torch.stack([t.mean(dim=(0, 2, 3)) for t in groups]).mean(0)
        var = 0.9 + 0.1 * torch.stack([t.var(dim=(0, 2, 3)) for t in groups]).mean(0)
        torch.testing.assert_close(r["mean"].double(), mean, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(r["var"].double(), var, rtol=1e-4, atol=1e-6)
    assert (ranks[0]["mean"] - ranks[1]["mean"]).abs().max() > 1e-3

    # 2. the run finished: rank 0 evaluated alone (MoCo's own accuracy runs BN on batch statistics)
    # and its metrics equal a one-process evaluation of the saved objective
    res = json.loads((tmp_path / "result.json").read_text())["metrics"]
    assert res["world_size"] == 2 and res["steps"] == 1
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    obj.load_state_dict(saved["objective_state"])
    torch.set_num_threads(1)
    one = training_metrics(obj, data, cfg, torch.device("cpu"))
    for k in ("objective_acc", "objective_loss", "knn_acc_uses_labels", "score"):
        assert res[k] == pytest.approx(one[k], rel=1e-6, abs=1e-9), k


if __name__ == "__main__":
    {"moco": _moco_main}.get(sys.argv[1], _ddp_main)(sys.argv[-1])
