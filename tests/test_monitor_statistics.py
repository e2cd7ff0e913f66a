"""Monitoring's numpy statistics give scipy's and scikit-learn's numbers, and judging needs neither.

``monitoring/statistics.py`` replaced ``scipy.stats`` (KS, chi-square, Benjamini-Hochberg,
Jensen-Shannon, Wilson, the percentile bootstrap) and scikit-learn's isotonic regression (CBPE's
calibration) on the path of ``conveyor monitor`` and the dashboard: these tests hold them to the
libraries they replaced, and check that judging a window imports neither.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from conveyor.monitoring import statistics

RNG = np.random.default_rng(7)


@pytest.mark.parametrize(("n", "m", "shift"), [(2000, 500, 0.0), (2000, 1400, 0.15), (300, 300, 0.2), (7, 13, 0.5)])
def test_the_ks_test_is_scipys_exact_one(n: int, m: int, shift: float) -> None:
    a, b = np.round(RNG.normal(size=n), 2), np.round(RNG.normal(shift, size=m), 2)  # ties, as logged values have
    statistic, pvalue = statistics.ks_2samp(a, b)
    expected = stats.ks_2samp(a, b)
    assert statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert pvalue == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-12)


def test_chi_square_benjamini_hochberg_and_jensen_shannon_are_scipys() -> None:
    for table in ([[10, 20], [30, 25]], [[100, 200, 50], [90, 230, 40]], [[5, 0, 3, 9], [2, 7, 1, 4]]):
        counts = np.array(table, dtype=float)
        assert statistics.chi2_contingency_pvalue(counts) == pytest.approx(stats.chi2_contingency(counts).pvalue)
    for statistic, dof in ((3.2, 1), (10.0, 7), (50.0, 49), (400.0, 30)):
        assert statistics.chi2_sf(statistic, dof) == pytest.approx(stats.chi2.sf(statistic, dof), rel=1e-9)
    pvalues = RNG.uniform(size=9) ** 3
    assert np.allclose(statistics.benjamini_hochberg(pvalues), stats.false_discovery_control(pvalues))
    p, q = RNG.uniform(size=6), RNG.uniform(size=6)
    q[2] = 0
    assert statistics.jensen_shannon(p, q) == pytest.approx(jensenshannon(p, q, base=2))


def test_wilson_and_the_bootstrap_are_scipys() -> None:
    for successes, trials in ((0, 3), (3, 3), (30, 40), (77, 120)):
        ci = stats.binomtest(successes, trials).proportion_ci(method="wilson")
        assert statistics.wilson(successes, trials) == pytest.approx((ci.low, ci.high))
    x, y = RNG.normal(size=200), RNG.integers(0, 3, 200)

    def both(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.stack([np.mean(a, axis=axis), np.mean(a * b, axis=axis)])

    low, high = statistics.percentile_bootstrap(both, (x, y), 1000, 0.95, 0)
    expected = stats.bootstrap(
        (x, y), both, paired=True, vectorized=True, n_resamples=1000, method="percentile", rng=np.random.default_rng(0)
    ).confidence_interval
    assert np.allclose(low, expected.low) and np.allclose(high, expected.high)


def test_cbpes_stored_calibration_predicts_as_scikit_learns_isotonic_regression() -> None:
    from sklearn.isotonic import IsotonicRegression

    scores = np.round(RNG.uniform(size=2000), 3)
    hits = RNG.uniform(size=2000) < scores**2
    knots, values = statistics.isotonic_fit(scores, hits)
    fitted = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, hits)
    at = np.concatenate([RNG.uniform(-0.2, 1.2, 500), scores])
    assert np.allclose(statistics.isotonic_predict(knots, values, at), fitted.predict(at))


def test_judging_a_window_imports_neither_scipy_nor_scikit_learn() -> None:
    probe = """
import sys
import numpy as np
from conveyor.monitoring.drift import compare
from conveyor.monitoring.estimate import Cbpe, quality_reference
from conveyor.monitoring.evidence import classifier_quality
from conveyor.monitoring.features import Column, Columns
from conveyor.monitoring.profile import profile_of
from conveyor.monitoring.thresholds import Thresholds

rng = np.random.default_rng(0)
def columns(shift):
    found = Columns()
    found.by_name["x"] = Column("x", "numeric", "input", list(rng.normal(shift, size=500)))
    found.by_name["c"] = Column("c", "categorical", "input", list(rng.choice(["a", "b"], 500)))
    return found
scores = rng.uniform(size=(300, 1))
reference = quality_reference(["no", "yes"], np.hstack([1 - scores, scores]).tolist(), [], [],
                              ["yes" if s > 0.5 else "no" for s in scores[:, 0]])
profile = profile_of(columns(0), source="test", quality=reference)
drift = compare(profile, columns(1), Thresholds())
quality = classifier_quality(["yes", "no", "yes"], ["yes", "yes", "no"], ["no", "yes"])
estimate = Cbpe(profile.quality).estimate(np.hstack([1 - scores, scores]).tolist())
assert any(c.drifted for c in drift) and quality["accuracy_ci"] and estimate["accuracy"] > 0
print(sorted({m.split(".")[0] for m in sys.modules if m.startswith(("scipy", "sklearn"))}))
"""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_dles_stored_trees_predict_as_scikit_learns_and_judge_without_it(tmp_path: Path) -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor

    from conveyor.monitoring import loss_trees
    from conveyor.monitoring.estimate import Dle, quality_reference

    n = 1200
    x = np.column_stack([RNG.normal(size=n), RNG.choice([3.0, 10.0, 50.0, 7.0], n), RNG.normal(size=n) * 100])
    x[::17, 0] = np.nan
    x[::23, 1] = np.nan
    y = np.abs(x[:, 2]) / 50 + 3 * (x[:, 1] == 10) + RNG.uniform(size=n)
    at = np.column_stack([RNG.normal(size=400), RNG.choice([3.0, 10.0, 99.0], 400), RNG.normal(size=400) * 100])
    at[::5, 0] = np.nan  # missing, and 99: a category the trees never saw
    for categorical in ([False, True, False], None):
        model = HistGradientBoostingRegressor(
            loss="poisson", max_iter=30, min_samples_leaf=20, categorical_features=categorical, random_state=0
        ).fit(x, y)
        stored = json.loads(json.dumps(loss_trees.trees_of(model)))  # plain numbers, as a profile keeps them
        assert np.allclose(loss_trees.predict(stored, at), model.predict(at), rtol=1e-12)

    inputs = [{"size": float(RNG.normal()), "kind": str(RNG.choice(["a", "b"]))} for _ in range(300)]
    served = [float(RNG.normal()) for _ in range(300)]
    spread = [2.0 if item["kind"] == "a" else 0.5 for item in inputs]
    truth = [value + RNG.normal() * width for value, width in zip(served, spread, strict=True)]
    reference = quality_reference([], None, inputs, served, truth)
    assert reference is not None and reference.loss_models  # fitted once, with the profile
    (tmp_path / "reference.json").write_text(reference.model_dump_json())
    probe = f"""
import sys
from pathlib import Path
from conveyor.monitoring.estimate import Dle, QualityReference
reference = QualityReference.model_validate_json(Path({str(tmp_path / "reference.json")!r}).read_text())
estimate = Dle(reference).estimate(reference.inputs, reference.predictions)
print(estimate["mae"] > 0, sorted({{m.split(".")[0] for m in sys.modules if m.startswith(("scipy", "sklearn"))}}))
"""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True []"
    fitted_now = Dle(reference.model_copy(update={"loss_models": {}}))  # a profile that predates them
    assert fitted_now.estimate(inputs, served) == Dle(reference).estimate(inputs, served)
