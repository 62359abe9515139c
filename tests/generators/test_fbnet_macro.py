"""The ``fbnet-macro`` generator: NAS-Bench-Macro as a special case, resolution, bad parameters."""

import numpy as np
import pytest
import torch

from unnas.errors import UserError
from unnas.generators import fbnet_macro as fm
from unnas.generators.complexity import complexity
from unnas.spec import ArchSpec, build, get_generator


@pytest.mark.parametrize("arch", ["02012100", "11111221", "00000000", "22222222"])
def test_macro_networks_are_fbnet_macro_networks(arch):
    """Same parameter count, FLOPs and, with the same weights, the same outputs as ``macro``."""
    a, b = ArchSpec("macro", {"arch": arch, "width": 0.25}), ArchSpec("fbnet-macro", fm.from_macro(arch, 0.25))
    assert complexity(a) == complexity(b)
    torch.manual_seed(0)
    net_a = build(a, 3).eval()
    net_b = build(b, 3).eval()
    net_b.load_state_dict(net_a.state_dict())
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(net_a(x), net_b(x))


def test_published_macro_parameter_counts_through_fbnet_macro():
    # README: NAS-Bench-Macro 00000000 / 22222222 at width 1 have 375,072 / 2,919,776 parameters
    assert complexity(ArchSpec("fbnet-macro", fm.from_macro("00000000")))["params"] == 375_072
    assert complexity(ArchSpec("fbnet-macro", fm.from_macro("22222222")))["params"] == 2_919_776


def test_subsampling_keeps_the_nearest_rows_and_shrinks_flops():
    x = torch.arange(36.0).view(1, 1, 6, 6)
    # rows / columns floor(i * 6 / 4) = 0, 1, 3, 4
    assert fm.subsample_index(6, 4).tolist() == [0, 1, 3, 4]
    assert torch.equal(fm.subsample(x, 4, 4)[0, 0, :, 0], torch.tensor([0.0, 6.0, 18.0, 24.0]))
    assert torch.equal(fm.subsample(x, 6, 6), x)
    full = complexity(ArchSpec("fbnet-macro", {}))["flops"]
    half = complexity(ArchSpec("fbnet-macro", {"resolution": 0.5}))["flops"]
    # 32 -> 16 pixels: every conv map has a quarter of the area (16, 8, 4, 2 instead of 32, 16, 8, 4)
    assert half * 4 == full


def test_sampling_draws_from_the_documented_choices_and_is_seeded():
    gen = get_generator("fbnet-macro")
    a = [gen.sample_params(np.random.default_rng(3)) for _ in range(2)]
    b = [gen.sample_params(np.random.default_rng(3)) for _ in range(2)]
    assert a == b
    many = [gen.sample_params(np.random.default_rng(s)) for s in range(40)]
    assert {t for p in many for t in p["expansions"]} == set(fm.EXPANSIONS)
    assert {p["resolution"] for p in many} == set(fm.RESOLUTIONS)
    assert {p["channels"][2] for p in many} == {32, 48, 64}
    fixed = gen.sample_params(np.random.default_rng(0), {"expansions": [6] * 8})
    assert fixed["expansions"] == [6] * 8


@pytest.mark.parametrize("key,value", [("expansions", [3] * 7), ("expansions", [3, 3, 3, 3, 3, 3, 3, -1]),
                                       ("kernels", [4] * 8), ("channels", [16, 32]), ("resolution", 1.5),
                                       ("resolution", 0.0), ("stem", 0), ("channels", [16, 32, "x"])])
def test_bad_parameters_are_one_line_user_errors(key, value):
    with pytest.raises(UserError, match=f"parameter {key}"):
        build(ArchSpec("fbnet-macro", {key: value}), 3)
