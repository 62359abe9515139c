"""Two CPU processes in a gloo group: key gathering, the cross-rank shuffle and the shared queue."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

WORKER = textwrap.dedent(r'''
    import sys
    import torch
    import torch.distributed as dist

    rank, world, init = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    from unnas.moco.objective import MocoOptions
    from unnas.moco.queue import gather_keys
    from unnas.moco.splitbn import shuffled_forward
    from unnas.generators.resnet import ResNet
    from unnas.objectives.base import DataInfo, build_objective

    # 1. keys of every rank, in rank order
    k = torch.full((2, 3), float(rank))
    assert gather_keys(k)[:, 0].tolist() == [0.0, 0.0, 1.0, 1.0]

    # 2. cross-rank shuffle: rank 0's permutation is used by all; every rank gets its own rows back
    b = 4
    x = torch.arange(world * b, dtype=torch.float32).view(world, b, 1)
    mine = x[rank]
    torch.testing.assert_close(shuffled_forward(lambda v: v * 2, mine, torch.Generator().manual_seed(rank)), mine * 2)
    centre = lambda v: v - v.mean(dim=0, keepdim=True)  # depends on which samples share a rank
    out = shuffled_forward(centre, mine, torch.Generator().manual_seed(10 + rank))
    perm = torch.randperm(world * b, generator=torch.Generator().manual_seed(10))  # rank 0's draw
    flat = x.view(-1, 1)
    expect = torch.empty_like(flat)
    for r in range(world):
        idx = perm[r * b:(r + 1) * b]
        expect[idx] = centre(flat[idx])
    torch.testing.assert_close(out, expect[rank * b:(rank + 1) * b])

    # 3. the objective: keys of both ranks enter identical queues
    torch.manual_seed(0)
    info = DataInfo(1, 10, (8, 8), (0.5,), (0.25,))
    obj = build_objective("moco", ResNet([1], 4, 1, None), info, MocoOptions(queue_size=32, bn_splits=2)).train()
    g = torch.Generator().manual_seed(100 + rank)
    images = torch.randint(0, 256, (8, 1, 8, 8), generator=g, dtype=torch.uint8)
    obj(images, None, g)["loss"].backward()
    assert obj.queue.size == 32 and int(obj.queue.count) == 16
    queues = [torch.empty_like(obj.queue.keys) for _ in range(world)]
    dist.all_gather(queues, obj.queue.keys)
    assert torch.equal(queues[0], queues[1])
    try:
        build_objective("moco", ResNet([1], 4, 1, None), info, MocoOptions(queue_size=24)).train()(images, None, g)
        raise AssertionError("a queue of 24 is not a multiple of 8 x 2 keys per step")
    except Exception as e:
        assert "moco.queue_size" in str(e), e
    dist.barrier()
    dist.destroy_process_group()
    print("ok", rank)
''')


@pytest.mark.slow  # two fresh interpreters importing torch: ~15 s on 2 busy cores
def test_two_process_gloo_group(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    init = f"file://{tmp_path / 'rendezvous'}"
    root = Path(__file__).resolve().parents[2]
    procs = [subprocess.Popen([sys.executable, str(script), str(r), "2", init], cwd=root,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(2)]
    outs = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("the gloo workers did not finish")
        outs.append((p.returncode, out, err))
    for r, (code, out, err) in enumerate(outs):
        assert code == 0 and f"ok {r}" in out, err[-2000:]
