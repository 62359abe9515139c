"""The Python API in unnas/__init__.py: cheap to import, documented, options mapped as the command maps them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import unnas
from unnas.api import _sections


def test_import_unnas_is_cheap_and_exports_the_api(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = "import sys, unnas; print(sorted(unnas.__all__)); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.stdout.splitlines()[-1] == "False", out.stderr[-2000:]
    for name in ("sample_population", "score", "rank_population", "load_run", "load_reference", "agreement", "Run",
                 "__version__"):
        assert name in unnas.__all__
        assert name == "__version__" or (getattr(unnas, name).__doc__ or "").strip()


def test_options_map_onto_config_sections_as_the_command_does():
    assert _sections({"generator": "nb201", "n": 4, "seed": 2, "params": {"width": 0.5}, "proxies": "synflow",
                      "supervised": False}) == \
        {"model": {"generator": "nb201", "params": {"width": 0.5}},
         "run": {"num_archs": 4, "master_seed": 2, "proxies": "synflow", "supervised": False}}
    assert _sections({"probes": "none", "data": "digits"}) == {"data": {"name": "digits"}, "eval": {"probes": ""}}


def test_an_unknown_option_is_refused_naming_it():
    with pytest.raises(unnas.UserError, match="num_arch"):
        _sections({"num_arch": 3})


def test_agreement_of_a_hand_computed_ranking():
    # ranks 1,2,3,4 vs 1,2,4,3: d^2 = 2, rho = 1 - 6*2/(4*15) = 0.8; one discordant pair of 6: tau = 4/6
    a = unnas.agreement([1, 2, 3, 4], [10, 20, 40, 30], n_boot=50, n_perm=50)
    assert a["spearman"]["value"] == pytest.approx(0.8) and a["kendall"]["value"] == pytest.approx(4 / 6)


def test_sample_draws_distinct_specs_reproducibly():
    first = unnas.sample_population("nb201", n=5, seed=3)
    assert len({s.arch_id for s in first}) == 5
    assert [s.arch_id for s in unnas.sample_population("nb201", n=5, seed=3)] == [s.arch_id for s in first]


def test_no_api_name_is_hidden_by_importing_a_module_of_the_package():
    """``import unnas.rank`` binds the module to ``unnas.rank``: an API function of that name would
    vanish once any code imported the command's module (as ``unnas rank`` and the docs do)."""
    import importlib
    import pkgutil

    modules = {m.name for m in pkgutil.iter_modules(unnas.__path__)}
    assert not modules & set(unnas.__all__)
    for name in ("unnas.rank", "unnas.sample", "unnas.cli"):
        importlib.import_module(name)
    assert all(callable(getattr(unnas, f)) for f in ("sample_population", "rank_population", "score", "load_run"))
