import json
import math

import numpy as np
import pytest
from scipy import stats
from unnas.eval.correlation import (
    agreement,
    pairwise_accuracy,
    resolve_k,
    top_k_indices,
)
from unnas.eval.random_experiment import _best_of_m_weights, random_experiment
from unnas.eval.seeds import aggregate_seeds

# fixed vectors with ties on both sides
SCORE = np.array([0.3, 1.2, 1.2, -0.5, 2.0, 0.3, 0.9, 3.1, 0.0, 1.2])
REF = np.array([10.0, 12.0, 11.0, 9.0, 15.0, 10.0, 12.0, 14.0, 8.0, 13.0])


def test_point_estimates_equal_scipy_with_ties():
    res = agreement(SCORE, REF, n_boot=50, n_perm=50)
    assert res["n"] == 10 and res["n_dropped"] == 0
    assert res["spearman"]["value"] == pytest.approx(stats.spearmanr(SCORE, REF).statistic, abs=1e-12)
    assert res["kendall"]["value"] == pytest.approx(
        stats.kendalltau(SCORE, REF, variant="b").statistic, abs=1e-12)
    assert res["pearson"]["value"] == pytest.approx(stats.pearsonr(SCORE, REF).statistic, abs=1e-12)
    for name in ("spearman", "kendall", "pearson"):
        b = res[name]
        assert b["ci_low"] <= b["value"] <= b["ci_high"]
    json.dumps(res)  # plain types only


def test_bootstrap_matches_explicit_loop_with_scipy():
    res = agreement(SCORE, REF, n_boot=200, n_perm=0, seed=3)
    rng = np.random.default_rng(3)
    idx = rng.integers(0, SCORE.size, size=(200, SCORE.size))
    rhos, taus = [], []
    for row in idx:
        s, r = SCORE[row], REF[row]
        if np.all(s == s[0]) or np.all(r == r[0]):
            continue
        rhos.append(stats.spearmanr(s, r).statistic)
        taus.append(stats.kendalltau(s, r).statistic)
    assert res["n_boot_used"] == len(rhos)
    lo, hi = np.percentile(rhos, [2.5, 97.5])
    assert res["spearman"]["ci_low"] == pytest.approx(lo, abs=1e-12)
    assert res["spearman"]["ci_high"] == pytest.approx(hi, abs=1e-12)
    lo, hi = np.percentile(taus, [2.5, 97.5])
    assert res["kendall"]["ci_low"] == pytest.approx(lo, abs=1e-12)
    assert res["kendall"]["ci_high"] == pytest.approx(hi, abs=1e-12)
    assert math.isnan(res["spearman"]["p_perm"])


def test_perfect_ranking_has_exact_unit_interval():
    ref = np.arange(30, dtype=float)
    score = ref**3 - 7.0  # monotone, not linear
    res = agreement(score, ref, n_boot=300, n_perm=199)
    for name in ("spearman", "kendall"):
        assert res[name]["value"] == 1.0
        assert res[name]["ci_low"] == 1.0 and res[name]["ci_high"] == 1.0
    assert res["pearson"]["value"] < 1.0
    assert res["n_boot_used"] == 300
    assert res["pairwise_accuracy"] == 1.0
    # no permutation of 30 items reaches |rho| = 1 except identity/reversal
    assert res["spearman"]["p_perm"] == pytest.approx(1 / 200)
    assert all(t["overlap"] == 1.0 for t in res["top_k"])


def test_reversed_ranking():
    ref = np.linspace(0, 1, 12)
    res = agreement(-ref, ref, n_boot=100, n_perm=0)
    assert res["spearman"]["value"] == -1.0
    assert res["kendall"]["value"] == -1.0
    assert res["pearson"]["value"] == pytest.approx(-1.0)
    assert res["spearman"]["ci_high"] == -1.0
    assert res["pairwise_accuracy"] == 0.0
    assert all(t["overlap"] == 0.0 for t in res["top_k"])


def test_top_k_hand_computed():
    # ref order (best first): 0, 1, 2, 3, 4, 5
    ref = [6, 5, 4, 3, 2, 1]
    # score order (best first): 2, 0, 4, 1, 5, 3 ; candidates 1 and 5 tie
    score = [9, 5, 10, 0, 7, 5]
    res = agreement(score, ref, n_boot=0, n_perm=0, top_k=(2, 3, 0.5, 0.6, 1.0))
    by_spec = {t["spec"]: t for t in res["top_k"]}
    # k=2: {2,0} vs {0,1} -> 1 common
    assert by_spec[2]["k"] == 2 and by_spec[2]["overlap"] == 0.5
    # k=3: {2,0,4} vs {0,1,2} -> 2 common
    assert by_spec[3]["overlap"] == pytest.approx(2 / 3)
    assert by_spec[3]["precision_at_k"] == pytest.approx(2 / 3)
    assert by_spec[0.5]["k"] == 3
    # 0.6 * 6 = 3.6 -> 4 : {2,0,4,1} (1 beats 5 on index) vs {0,1,2,3} -> 3 common
    assert by_spec[0.6]["k"] == 4 and by_spec[0.6]["overlap"] == 0.75
    assert by_spec[1.0]["k"] == 6 and by_spec[1.0]["overlap"] == 1.0


def test_top_k_tie_break_and_resolution():
    assert list(top_k_indices([1, 3, 3, 2, 3], 2)) == [1, 2]
    assert resolve_k(0.1, 5) == 1
    assert resolve_k(0.1, 11) == 2
    assert resolve_k(50, 10) == 10
    with pytest.raises(ValueError):
        resolve_k(0.0, 10)
    with pytest.raises(ValueError):
        resolve_k(1.5, 10)


def test_pairwise_accuracy_hand_computed_with_tie():
    ref = [1.0, 2.0, 3.0, 3.0]
    score = [0.0, 5.0, 5.0, 1.0]
    # pairs with ref_i != ref_j: (0,1) ok, (0,2) ok, (0,3) ok,
    # (1,2) score tie -> 0.5, (1,3) wrong; (2,3) has equal ref -> excluded
    acc, pairs = pairwise_accuracy(score, ref)
    assert pairs == 5
    assert acc == pytest.approx(3.5 / 5)
    assert agreement(score, ref, n_boot=0, n_perm=0)["pairwise_accuracy"] == pytest.approx(0.7)


def _brute_pairwise(score, ref):
    hits, pairs = 0.0, 0
    for i in range(len(ref)):
        for j in range(i + 1, len(ref)):
            if ref[i] == ref[j]:
                continue
            pairs += 1
            if score[i] == score[j]:
                hits += 0.5
            elif (score[i] > score[j]) == (ref[i] > ref[j]):
                hits += 1
    return hits / pairs, pairs


@pytest.mark.parametrize("seed", range(5))
def test_pairwise_accuracy_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, 6, size=40).astype(float)
    score = rng.integers(0, 4, size=40) + (seed % 2) * ref  # many ties, some joint
    acc, pairs = pairwise_accuracy(score, ref)
    b_acc, b_pairs = _brute_pairwise(score, ref)
    assert pairs == b_pairs and acc == pytest.approx(b_acc, abs=1e-12)


def test_pairwise_accuracy_constant_sides():
    assert pairwise_accuracy([2.0, 2.0, 2.0], [1.0, 2.0, 3.0]) == (0.5, 3)
    acc, pairs = pairwise_accuracy([1.0, 2.0, 3.0], [1.0, 1.0, 1.0])
    assert math.isnan(acc) and pairs == 0


def test_nan_and_none_dropped_pairwise():
    score = [1.0, None, 3.0, 4.0, float("nan"), 6.0, 2.0]
    ref = [1.0, 2.0, np.nan, 4.0, 5.0, 6.0, 3.0]
    res = agreement(score, ref, n_boot=20, n_perm=20)
    assert res["n"] == 4 and res["n_dropped"] == 3
    s, r = [1.0, 4.0, 6.0, 2.0], [1.0, 4.0, 6.0, 3.0]
    assert res["spearman"]["value"] == pytest.approx(stats.spearmanr(s, r).statistic)
    assert res["pearson"]["value"] == pytest.approx(stats.pearsonr(s, r).statistic)


def test_too_few_candidates_gives_nans():
    res = agreement([1.0, 2.0, None], [2.0, 1.0, 3.0])
    assert res["n"] == 2 and res["n_dropped"] == 1
    assert math.isnan(res["spearman"]["value"]) and math.isnan(res["kendall"]["ci_low"])
    assert math.isnan(res["pairwise_accuracy"])
    assert all(math.isnan(t["overlap"]) for t in res["top_k"])


def test_constant_score_gives_nan_correlations():
    res = agreement([1.0] * 5, [1, 2, 3, 4, 5], n_boot=20, n_perm=20)
    assert math.isnan(res["spearman"]["value"]) and math.isnan(res["spearman"]["p_perm"])
    assert res["pairwise_accuracy"] == 0.5


def test_permutation_p_value_is_small_for_signal_and_large_for_noise():
    rng = np.random.default_rng(1)
    ref = rng.normal(size=40)
    good = agreement(ref + 0.3 * rng.normal(size=40), ref, n_boot=0, n_perm=499)
    noise = agreement(rng.normal(size=40), ref, n_boot=0, n_perm=499)
    assert good["spearman"]["p_perm"] == pytest.approx(1 / 500)
    assert noise["spearman"]["p_perm"] > 0.05
    # a moderate signal: agrees with SciPy's t-approximation to Monte Carlo accuracy
    mid_score = ref + 2.5 * rng.normal(size=40)
    mid = agreement(mid_score, ref, n_boot=0, n_perm=4999, seed=5)
    p_t = stats.spearmanr(mid_score, ref).pvalue
    assert 0.005 < p_t < 0.5
    assert mid["spearman"]["p_perm"] == pytest.approx(p_t, abs=4 * math.sqrt(p_t / 5000) + 0.01)


def test_aggregate_seeds():
    rows = [
        ("a", 0, 1.0, 10.0), ("a", 1, 3.0, 10.0),
        ("b", 0, 2.0, 20.0), ("b", 1, 2.0, 20.0),
        ("c", 0, 3.0, 30.0), ("c", 1, 1.0, 30.0),
        ("d", 0, 4.0, 40.0), ("d", 1, None, 40.0),
        ("e", 1, 5.0, 50.0),
    ]
    out = aggregate_seeds(rows)
    ids, score, ref, ceiling = out
    assert ids == ["a", "b", "c", "d", "e"]
    np.testing.assert_allclose(score, [2.0, 2.0, 2.0, 4.0, 5.0])
    np.testing.assert_allclose(ref, [10, 20, 30, 40, 50])
    # archs with both seeds: a, b, c -> seed0 [1,2,3] vs seed1 [3,2,1] -> rho = -1
    assert ceiling == pytest.approx(-1.0)
    assert out.noise_ceiling == ceiling


def test_aggregate_seeds_three_seeds_and_single_seed():
    rng = np.random.default_rng(0)
    table = rng.normal(size=(8, 3))
    rows = [(f"x{i}", s, table[i, s], float(i)) for i in range(8) for s in range(3)]
    expected = np.mean([stats.spearmanr(table[:, i], table[:, j]).statistic
                        for i, j in ((0, 1), (0, 2), (1, 2))])
    _, score, _, ceiling = aggregate_seeds(rows)
    np.testing.assert_allclose(score, table.mean(axis=1))
    assert ceiling == pytest.approx(expected)
    assert math.isnan(aggregate_seeds([("a", 0, 1.0, 1.0), ("b", 0, 2.0, 2.0)]).noise_ceiling)


def test_best_of_m_weights_match_enumeration():
    from itertools import combinations

    values = np.array([3.0, 1.0, 3.0, 2.0, 0.5, 2.0])
    m = 3
    expected = np.zeros(6)
    subsets = list(combinations(range(6), m))
    for sub in subsets:
        best = max(values[list(sub)])
        winners = [i for i in sub if values[i] == best]  # ties: uniform
        for i in winners:
            expected[i] += 1 / len(winners) / len(subsets)
    np.testing.assert_allclose(_best_of_m_weights(values, m), expected, atol=1e-12)


def test_random_experiment_score_equals_reference_is_oracle():
    rng = np.random.default_rng(0)
    ref = np.round(rng.normal(size=200), 1)  # with ties
    res = random_experiment(ref, ref, n_draws=500, seed=4)
    assert res["m"] == [1, 2, 4, 8, 16, 32, 64, 128, 200]
    assert res["proxy"]["mean"] == res["oracle"]["mean"]
    assert res["proxy"]["std"] == res["oracle"]["std"]
    np.testing.assert_allclose(res["proxy"]["expected"], res["oracle"]["expected"], atol=1e-12)
    assert res["oracle"]["mean"][-1] == ref.max()
    assert np.all(np.diff(res["oracle"]["expected"]) > 0)
    json.dumps(res)


def test_random_experiment_m1_is_population_mean():
    rng = np.random.default_rng(1)
    ref = rng.uniform(60, 95, size=300)
    score = rng.normal(size=300)
    res = random_experiment(score, ref, ms=[1, 300], n_draws=2000, seed=0)
    pop, sd = ref.mean(), ref.std()
    assert res["population_mean"] == pytest.approx(pop)
    # the single candidate is picked by all three rules
    assert res["proxy"]["mean"][0] == res["oracle"]["mean"][0] == res["random"]["mean"][0]
    for k in ("proxy", "oracle", "random"):
        assert res[k]["expected"][0] == pytest.approx(pop, abs=1e-9)
        assert res[k]["expected_std"][0] == pytest.approx(sd, abs=1e-9)
        assert abs(res[k]["mean"][0] - pop) < 4 * sd / math.sqrt(2000)
    # m = n: the whole population every time
    assert res["proxy"]["mean"][1] == ref[np.argmax(score)]
    assert res["oracle"]["mean"][1] == ref.max() and res["oracle"]["std"][1] == 0.0


def test_random_experiment_independent_score_stays_at_population_mean():
    rng = np.random.default_rng(2)
    n = 2000
    ref = rng.normal(70.0, 5.0, size=n)
    score = rng.normal(size=n)
    res = random_experiment(score, ref, ms=[1, 2, 4, 8, 16, 32], n_draws=1000, seed=1)
    pop = ref.mean()
    for i, m in enumerate(res["m"]):
        lo = res["proxy"]["mean"][i] - res["proxy"]["std"][i]
        hi = res["proxy"]["mean"][i] + res["proxy"]["std"][i]
        assert lo <= pop <= hi
        # with an independent score the chosen candidate is a weighted draw whose
        # weights depend only on score ranks: its mean deviates from the
        # population mean by about std(ref) * sqrt(sum w^2) over score realisations
        w = _best_of_m_weights(score, m)
        band = 4 * ref.std() * (math.sqrt(np.sum(w**2)) + 1 / math.sqrt(1000))
        assert abs(res["proxy"]["mean"][i] - pop) < band
        assert abs(res["random"]["mean"][i] - pop) < 4 * ref.std() / math.sqrt(1000)
        # Monte Carlo agrees with the exact expectation
        for k in ("proxy", "oracle", "random"):
            se = res[k]["expected_std"][i] / math.sqrt(1000)
            assert abs(res[k]["mean"][i] - res[k]["expected"][i]) < 5 * se + 1e-12
    assert res["oracle"]["mean"][-1] > pop + 2 * ref.std()


def test_random_experiment_drops_missing_and_validates_ms():
    res = random_experiment([1.0, None, 3.0, 2.0], [1.0, 2.0, 3.0, np.nan], n_draws=10)
    assert res["n"] == 2 and res["n_dropped"] == 2 and res["m"] == [1, 2]
    with pytest.raises(ValueError):
        random_experiment([1, 2, 3], [1, 2, 3], ms=[4])


@pytest.mark.parametrize("n", [2, 3, 8, 40, 300])
def test_rowwise_kendall_equals_scipy_with_ties(n):
    from unnas.eval.correlation import _rowwise_kendall

    rng = np.random.default_rng(n)
    x = rng.integers(0, 5, size=(50, n)).astype(float)  # many ties
    y = x + rng.integers(-2, 3, size=(50, n))
    x[0] = 1.0  # a constant row: tau-b undefined (nan), as scipy
    got = _rowwise_kendall(x, y)
    want = np.array([stats.kendalltau(a, b, variant="b").statistic for a, b in zip(x, y)])
    assert np.isnan(got[0]) and np.isnan(want[0])
    np.testing.assert_allclose(got[1:], want[1:], rtol=0, atol=1e-12)
    # a hand-computed case: x = (1, 2, 3), y = (1, 3, 2): C = 2, D = 1, no ties -> 1/3
    assert _rowwise_kendall(np.array([[1.0, 2, 3]]), np.array([[1.0, 3, 2]]))[0] == pytest.approx(1 / 3)
