import io
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from scipy import stats
from unnas.eval.edf import complexity_weights, edf, edf_at, ks, plot_edfs


def test_edf_known_sample():
    x, F = edf([3, 1, 2, 2])
    np.testing.assert_array_equal(x, [1, 2, 3])
    np.testing.assert_allclose(F, [0.25, 0.75, 1.0])


def test_edf_at_grid_and_missing_values():
    grid = [0.5, 1, 1.5, 2, 2.9, 3, 10]
    np.testing.assert_allclose(edf_at([3, 1, 2, 2, np.nan], grid), [0, 0.25, 0.25, 0.75, 0.75, 1, 1])


def test_weighted_edf():
    x, F = edf([3, 1, 2, 2], weights=[2, 1, 0.5, 0.5])
    np.testing.assert_allclose(F, [0.25, 0.5, 1.0])
    with pytest.raises(ValueError):
        edf([1, 2], weights=[1, -1])


def test_complexity_weights_hand_made_histogram():
    w = complexity_weights([1.0, 1.1, 1.2, 100.0], n_bins=2)  # log bins [1,10), [10,100]
    np.testing.assert_allclose(w, [1 / 6, 1 / 6, 1 / 6, 1 / 2])
    # linear bins on [0, 10] with 5 bins of width 2: counts 2, 0, 1, 0, 3
    w = complexity_weights([0.0, 1.0, 5.0, 9.0, 9.5, 10.0], n_bins=5, log=False)
    np.testing.assert_allclose(w, [1 / 6, 1 / 6, 1 / 3, 1 / 9, 1 / 9, 1 / 9])
    assert w.sum() == pytest.approx(1.0)


def test_complexity_weights_equal_bin_mass():
    rng = np.random.default_rng(0)
    params = np.exp(rng.normal(12, 1.5, size=1000))
    w = complexity_weights(params, n_bins=10)
    edges = np.geomspace(params.min(), params.max(), 11)
    bins = np.clip(np.searchsorted(edges, params, side="right") - 1, 0, 9)
    mass = np.bincount(bins, weights=w, minlength=10)
    nonempty = mass[np.bincount(bins, minlength=10) > 0]
    np.testing.assert_allclose(nonempty, 1 / nonempty.size)
    assert complexity_weights([5.0, 5.0, 5.0]).tolist() == pytest.approx([1 / 3] * 3)
    with pytest.raises(ValueError):
        complexity_weights([0.0, 1.0])


def test_ks_unweighted_is_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=60), rng.normal(0.4, 1.0, size=45)
    res = ks(a, b)
    ref = stats.ks_2samp(a, b)
    assert res["D"] == ref.statistic and res["p_value"] == ref.pvalue
    assert res["weighted"] is False


def test_ks_weighted_uniform_weights_reproduces_statistic():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=400), np.round(rng.normal(0.1, 1.0, size=300), 2)
    res = ks(a, b, weights_a=np.full(400, 3.0))
    ref = stats.ks_2samp(a, b, method="asymp")
    assert res["weighted"] is True
    assert res["D"] == pytest.approx(ref.statistic, abs=1e-12)
    assert res["n_a"] == pytest.approx(400) and res["n_b"] == pytest.approx(300)
    en = 400 * 300 / 700
    assert res["p_value"] == pytest.approx(stats.kstwobign.sf(ref.statistic * math.sqrt(en)))
    # close to SciPy's finite-n asymptotic p-value for samples this large
    assert 0.01 < ref.pvalue < 0.9
    assert res["p_value"] == pytest.approx(ref.pvalue, rel=0.1)


def test_ks_weighted_hand_computed():
    # F_a: mass 0.5 at 1, 0.5 at 2; F_b: mass 0.25 at 1, 0.75 at 3
    res = ks([1.0, 2.0], [1.0, 3.0], weights_a=[1, 1], weights_b=[1, 3])
    assert res["D"] == pytest.approx(0.75)  # at e=2: 1.0 vs 0.25
    assert res["n_b"] == pytest.approx(16 / 10)
    en = 2 * 1.6 / 3.6
    assert res["p_value"] == pytest.approx(stats.kstwobign.sf(0.75 * math.sqrt(en)))


def test_plot_edfs():
    pops = {"A": [3, 1, 2, 2], "B": [1.5, 2.5, np.nan]}
    ax = plot_edfs(pops, weights={"A": [1, 1, 1, 1]}, xlabel="top-1 error (%)")
    lines = ax.get_lines()
    assert len(lines) == 2
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["A (n=4)", "B (n=2)"]
    assert ax.get_xlabel() == "top-1 error (%)" and ax.get_ylabel()
    np.testing.assert_allclose(lines[0].get_ydata(), [0, 0.25, 0.75, 1.0])
    # drawing onto a given axis returns that axis
    from matplotlib.figure import Figure

    ax2 = Figure().add_subplot()
    assert plot_edfs({"C": [1, 2]}, ax=ax2) is ax2
    buf = io.BytesIO()
    ax.figure.savefig(buf, format="png")
    assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"


def test_complexity_weights_on_shared_bins():
    # own log range [20, 50]: the edge at sqrt(1000) ~ 31.6 puts 20 and 30 in bin 0, 50 in bin 1
    assert complexity_weights([20.0, 30.0, 50.0], n_bins=2).tolist() == pytest.approx([0.25, 0.25, 0.5])
    # the range of all populations, [1, 100]: the edge at 10 puts all three in bin 1
    shared = complexity_weights([20.0, 30.0, 50.0], n_bins=2, value_range=(1.0, 100.0))
    assert shared.tolist() == pytest.approx([1 / 3] * 3)
    lin = complexity_weights([1.0, 2.0, 9.0], n_bins=2, log=False, value_range=(0.0, 10.0))  # edge at 5
    assert lin.tolist() == pytest.approx([0.25, 0.25, 0.5])
    for bad in [(30.0, 100.0), (1.0, 40.0), (0.0, 100.0), (1.0, float("inf"))]:
        with pytest.raises(ValueError, match="value_range"):
            complexity_weights([20.0, 30.0, 50.0], n_bins=2, value_range=bad)
