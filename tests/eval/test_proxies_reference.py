"""Each proxy against the authors' public code, run once on the same seeded networks and batches.

The numbers below were computed by the authors' code (not part of this project), fed the same
network and inputs as ours:

* ``grad_norm``, ``snip``, ``grasp``, ``fisher``, ``synflow``, ``jacob_cov``: SamsungLabs/zero-cost-nas
  (commit a43bfbc), ``foresight.pruners.predictive.find_measures`` with ``dataload=("random", 1)``.
  For the loss-based four, the network handed to it was the rotation objective wrapped as a module
  whose output is its loss (``loss_fn = lambda out, target: out``, the same augmentation generator
  state on every forward), so their code differentiates exactly our label-free loss; synflow and
  jacob_cov got the backbone and its normalized inputs.
* ``naswot``: the ``hook_logdet`` hooks of BayesWatch/nas-without-training (commit b3a82a6,
  ``score_networks.py``) on the backbone, adapted to a network returning one tensor.
* ``swap``, ``swap_reg``: pym1024/SWAP (commit f6049f7), ``src.metrics.swap.SWAP`` on the backbone;
  for the re-initialised variant their ``network_weight_gaussian_init`` drew from the global RNG set
  to our generator's state before each repeat (one pass over the modules per repeat). Their
  ``count_parameters`` calls ``np.sum`` on a generator, which NumPy 2 refuses; it was replaced by
  the same sum with ``sum()``.
* ``zico``: SLDGroup/ZiCo (commit b0fec65), ``ZeroShotProxy/compute_zico.getzico`` with ``.cuda()``
  made a no-op, on the objective wrapped as above (one generator advancing over the two batches).

Networks: NAS-Bench-Macro at width 0.25, weights from ``torch.manual_seed(seed)``, rotation objective;
32 seeded random uint8 images (3 x 32 x 32); one intra-op thread. Their numbers were recorded on
an AMD EPYC CPU (AVX512); there the relative differences ours vs theirs were at most 4.7e-6
(grasp, float32 second-order terms), 4.1e-6 (swap_reg: their size factor is float32), 2e-7 for
the other gradient proxies, and synflow, jacob_cov, naswot and the SWAP counts agreed to the last
bit. On an Intel Xeon with AMX, whose oneDNN float32 kernels sum in another order, ours differs
from the same recorded numbers by up to 5.9e-4 (zico: with two batches ``std g = |g1 - g2| / 2``,
so weights whose two gradients nearly agree amplify float32 rounding), 1.0e-5 (grasp) and 1.3e-9
(jacob_cov, a log-determinant of a float32 Jacobian's correlation). On an AMD EPYC with AVX2
only (no AVX-512), by up to 2.64e-3 (zico, the second network), 1.2e-5 (grasp) and 3.8e-8
(naswot, the first network: a pre-activation within rounding of zero takes the other sign, so
one bit of the ReLU codes flips). The tolerances below cover the three CPUs. A formula error
moves a value far more (zico with the unbiased standard deviation instead of the population one:
by log(sqrt 2) = 0.35 per layer, percents of the score).
"""

import pytest
import torch
from unnas.eval.proxies import ProxyInput, compute_proxy

from unnas.objectives import DataInfo, build_objective
from unnas.spec import ArchSpec, build

INFO = DataInfo(3, 10, (32, 32), (0.4913, 0.4821, 0.4465), (0.247, 0.243, 0.261))
CASES = [
    ("12012100", 0, 10, {"grad_norm": 5.514991283416748, "snip": 13.999527931213379, "grasp": -0.08463883399963379,
                         "fisher": 0.01685475744307041, "synflow": 192711635784.14465, "jacob_cov": -8.009704221026812,
                         "naswot": 180.5075136623574, "swap_own": 55950.0, "swap_normal4": 55838.25,
                         "swap_reg": 52938.950300216675, "zico": 176.06190490722656}),
    ("20211002", 1, 11, {"grad_norm": 5.990469455718994, "snip": 16.510038375854492, "grasp": -0.4739205837249756,
                         "fisher": 0.02499987557530403, "synflow": 783610301685.5956, "jacob_cov": -8.01048370905065,
                         "naswot": 181.09111535404818, "swap_own": 56640.0, "swap_normal4": 56489.5,
                         "swap_reg": 143.93751248717308, "zico": 186.5023651123047}),
    ("01120222", 2, 12, {"grad_norm": 8.203956604003906, "snip": 25.567073822021484, "grasp": -0.12279582023620605,
                         "fisher": 0.0319179892539978, "synflow": 34879646832095.535, "jacob_cov": -8.017985481410236,
                         "naswot": 177.75442749828684, "swap_own": 52297.0, "swap_normal4": 51672.75,
                         "swap_reg": 3.083397428781653e-14, "zico": 217.1460723876953}),
]
# (proxy, options, relative tolerance)
RUNS = {
    "grad_norm": ("grad_norm", {"batch_size": 8}, 1e-6), "snip": ("snip", {"batch_size": 8}, 1e-6),
    "grasp": ("grasp", {"batch_size": 8}, 5e-5), "fisher": ("fisher", {"batch_size": 8}, 1e-6),
    "synflow": ("synflow", None, 1e-9), "jacob_cov": ("jacob_cov", {"batch_size": 8}, 1e-8),
    "naswot": ("naswot", {"batch_size": 16}, 1e-7), "swap_own": ("swap", {"batch_size": 16, "init": "none"}, 0),
    "swap_normal4": ("swap", {"batch_size": 16, "repeats": 4}, 0),
    "swap_reg": ("swap_reg", {"batch_size": 16, "init": "none", "mu": 60.0, "sigma": 400.0}, 1e-5),
    "zico": ("zico", {"batch_size": 8, "batches": 2}, 5e-3),
}


@pytest.mark.parametrize("arch,seed,img_seed,theirs", CASES, ids=[c[0] for c in CASES])
def test_equals_the_authors_code(arch, seed, img_seed, theirs):
    torch.manual_seed(seed)
    obj = build_objective("rotation", build(ArchSpec("macro", {"arch": arch, "width": 0.25}), 3), INFO)
    images = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(img_seed))
    x = ProxyInput(obj, images, torch.Generator().manual_seed(100 + seed))
    for key, (name, options, rel) in RUNS.items():
        assert compute_proxy(name, x, options) == pytest.approx(theirs[key], rel=rel, abs=0), key
