"""MeCo, AZ-NAS's components and Zen-score against the authors' public code, run once on the same seeded
networks and inputs.

The numbers below were computed by the authors' code (not part of this project), fed the same
networks and inputs as ours (one intra-op thread, AMD EPYC CPU):

* ``meco``: HamsterMimi/MeCo (commit 0d830dd), ``correlation/NAS_Bench_201.py::get_score`` with
  ``measure="meco"`` (its forward hooks on every module), extracted alone, on a copy of the backbone
  in training mode; its input was the N(0, 1) image drawn from our generator's state (``gaussian``)
  or the first normalized image of the batch (``data``). Theirs takes the eigenvalues with
  ``torch.linalg.eig`` and sums in float32, ours with ``eigvalsh``; the relative differences were at
  most 3e-5 (NAS-Bench-Macro, whose deepest maps have fewer positions than channels, so many
  eigenvalues are rounding around 0).
* ``az_*``: cvlab-yonsei/AZ-NAS (commit 5e6683a), ``NB201/ZeroShotProxy/compute_az_nas_score.py::
  compute_nas_score`` with ``.cuda()`` made a no-op, the global RNG set to our generator's state
  before the call (it draws the Kaiming weights, the Gaussian input and the gradient signs from it,
  in that order), and ``extract_cell_features`` the stem's output and every cell's output (for
  NAS-Bench-Macro, every layer's output that is not its input: our adaptation of identity layers,
  which their code would score ``-inf``). ``gaussian16``: 16 Gaussian images; ``data8``: the first 8
  normalized images of the batch (their ``trainloader`` path). All agreed to the last bit.
* ``zen``: idstcv/ZenNAS (commit d1d617e), ``ZeroShotProxy/compute_zen_score.py::compute_nas_score``
  and its ``network_weight_gaussian_init``, extracted alone, with ``forward_pre_GAP`` our
  ``forward_features``, the global RNG set to our generator's state (8 images, 4 repeats,
  ``mixup_gamma=1e-2``); relative differences at most 2e-8 (their float32 sum order).

Networks: NAS-Bench-201 cells at ``width=0.5, cells=2`` and NAS-Bench-Macro ``10201102`` at width
0.25, weights from ``torch.manual_seed(seed)``; 64 seeded random uint8 images (3 x 32 x 32).
"""

import pytest
import torch
from unnas.eval.proxies import ProxyInput, compute_proxy

from unnas.objectives import DataInfo, build_objective
from unnas.spec import ArchSpec, build

INFO = DataInfo(3, 10, (32, 32), (0.4913, 0.4821, 0.4465), (0.247, 0.243, 0.261))
NB1 = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|nor_conv_3x3~1|skip_connect~2|"
NB2 = "|nor_conv_1x1~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
CASES = [
    ("nb201", {"arch": NB1, "width": 0.5, "cells": 2}, 0, 10,
     {"meco_gaussian": 26.63748550415039, "meco_data": 26.884082794189453,
      "az_expressivity_gaussian16": 17.927200317382812, "az_progressivity_gaussian16": -0.08869147300720215,
      "az_trainability_gaussian16": -0.18783363013853166, "az_expressivity_data8": 18.393686890602112,
      "az_progressivity_data8": -0.050032615661621094, "az_trainability_data8": -0.22856871945671897,
      "zen": 48.48177528381348}),
    ("nb201", {"arch": NB2, "width": 0.5, "cells": 2}, 1, 11,
     {"meco_gaussian": 27.772167205810547, "meco_data": 27.94512176513672,
      "az_expressivity_gaussian16": 21.828930020332336, "az_progressivity_gaussian16": -0.004871487617492676,
      "az_trainability_gaussian16": -0.1346221431844773, "az_expressivity_data8": 21.89694583415985,
      "az_progressivity_data8": -0.0016636848449707031, "az_trainability_data8": -0.15283177291723027,
      "zen": 50.23979473114014}),
    ("macro", {"arch": "10201102", "width": 0.25}, 2, 12,
     {"meco_gaussian": 3.248462438583374, "meco_data": 3.223963499069214,
      "az_expressivity_gaussian16": 18.440799951553345, "az_progressivity_gaussian16": 0.06809735298156738,
      "az_trainability_gaussian16": -0.35996179982062976, "az_expressivity_data8": 18.285595893859863,
      "az_progressivity_data8": 0.06761550903320312, "az_trainability_data8": -0.6089056927353307,
      "zen": 21.66311264038086}),
]
# key -> (proxy, options, relative tolerance)
RUNS = {"meco_gaussian": ("meco", None, 1e-4), "meco_data": ("meco", {"input": "data"}, 1e-4),
        "zen": ("zen", {"batch_size": 8, "repeats": 4}, 1e-6)}
for _part in ("expressivity", "progressivity", "trainability"):
    RUNS[f"az_{_part}_gaussian16"] = (f"az_{_part}", {"batch_size": 16}, 1e-6)
    RUNS[f"az_{_part}_data8"] = (f"az_{_part}", {"batch_size": 8, "input": "data"}, 1e-6)


@pytest.mark.parametrize("gen,params,seed,img_seed,theirs", CASES, ids=["nb201-a", "nb201-b", "macro"])
def test_equals_the_authors_code(gen, params, seed, img_seed, theirs):
    torch.manual_seed(seed)
    obj = build_objective("rotation", build(ArchSpec(gen, params), 3), INFO)
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(img_seed))
    x = ProxyInput(obj, images, torch.Generator().manual_seed(100 + seed))
    for key, (name, options, rel) in RUNS.items():
        assert compute_proxy(name, x, options) == pytest.approx(theirs[key], rel=rel, abs=1e-6), key


def test_trainability_of_an_identity_block_is_minus_infinity_and_identity_layers_are_not_cells():
    from unnas.eval.proxies.aznas import cell_features, pair_score

    torch.manual_seed(0)
    net = build(ArchSpec("macro", {"arch": "10000000", "width": 0.25}), 3).train()
    feats = cell_features(net, torch.randn(2, 3, 32, 32))
    # stem, layer 1 (a block), layer 3 (a strided 1x1 conv: stage 2's first layer), layer 6 (stage 3's)
    assert len(feats) == 4
    f = torch.randn(2, 1, 3, 3, requires_grad=True)  # one channel: M = 2 mean(g^2) = 2 exactly
    assert pair_score(f * 1.0, f, torch.Generator().manual_seed(0)) == float("-inf")
    # a block that doubles its input: s = 2, score 2 - 2 - 1/2 (hand-computed)
    assert pair_score(f * 2.0, f, torch.Generator().manual_seed(0)) == pytest.approx(-0.5, abs=1e-5)
