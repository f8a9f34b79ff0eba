"""analysis/seeds.py: the interval over seeds and the learning curves over seeds, with exact numbers."""

import pytest

from dsrl_real.analysis.metrics import plot_seed_curves
from dsrl_real.analysis.seeds import curve_grid, curve_over_seeds, over_seeds, paired_difference, t_interval


@pytest.mark.parametrize(("rates", "interval"), [
    # mean 0.7, s.d. 0.1, t(0.975, 2 d.f.) = 4.3027: 0.7 -+ 4.3027 x 0.1 / sqrt(3) = 0.7 -+ 0.2484
    ([0.6, 0.7, 0.8], [0.452, 0.948]),
    # mean 0.8467, s.d. 0.0611: -+ 0.1518
    ([0.86, 0.78, 0.9], [0.695, 0.998]),
    ([0.5, 0.5], [0.5, 0.5]),  # no spread, no width
    ([0.1, 0.9], [0.0, 1.0]),  # t(0.975, 1) = 12.7: clipped to the rates' range
    ([0.5], None),  # one seed says nothing about the spread
    ([], None),
])
def test_the_interval_over_seeds_is_students_t_on_their_final_rates(rates, interval):
    assert t_interval(rates) == interval


def test_the_difference_of_two_settings_is_paired_by_seed_on_the_seeds_both_have_and_its_interval_may_go_below_zero():
    # seed 7 has no reference run: left out. Differences -0.2, -0.3, -0.2: mean -0.2333, s.d. 0.0577, -+ 0.1434
    rates, reference = {"0": 0.6, "1": 0.4, "2": 0.7, "7": 0.1}, {"2": 0.9, "0": 0.8, "1": 0.7}
    assert paired_difference(rates, reference) == {"per_seed": {"0": -0.2, "1": -0.3, "2": -0.2}, "mean": -0.2333,
                                                   "ci95_over_seeds": [-0.377, -0.09], "n_seeds": 3}
    assert paired_difference({"0": 0.1}, {"0": 0.9}) == {"per_seed": {"0": -0.8}, "mean": -0.8, "ci95_over_seeds": None, "n_seeds": 1}
    assert paired_difference({"0": 0.1}, {}) == {"per_seed": {}, "mean": None, "ci95_over_seeds": None, "n_seeds": 0}
    assert t_interval([-0.9, 0.9], bounds=(-1.0, 1.0)) == [-1.0, 1.0]


def test_over_seeds_keeps_each_seed_in_seed_order_with_the_mean_and_the_t_interval():
    per_seed = {"10": {"final_success_rate": 0.8, "final_ci95": [0.66, 0.89]}, "2": {"final_success_rate": 0.6, "final_ci95": [0.46, 0.72]},
                "3": {"final_success_rate": 0.7, "final_ci95": [0.56, 0.81]}}
    summary = over_seeds(per_seed)
    assert list(summary["per_seed"]) == ["2", "3", "10"]
    assert summary["per_seed"]["2"] == {"final_success_rate": 0.6, "final_ci95": [0.46, 0.72]}
    assert (summary["mean"], summary["ci95_over_seeds"], summary["n_seeds"]) == (0.7, [0.452, 0.948], 3)


def test_curves_over_seeds_read_each_seeds_first_evaluation_at_or_after_each_grid_point(tmp_path):
    assert curve_grid(5000, 1000) == [0, 1000, 2000, 3000, 4000, 5000]
    assert curve_grid(30, 12) == [0, 12, 24, 30]
    one = [{"env_steps": 0, "success_rate": 0.2}, {"env_steps": 14, "success_rate": 0.4}, {"env_steps": 33, "success_rate": 0.8}]
    # its evaluation past 12 came only at 26 (two thresholds in one episode): it stands for 12 and 24
    two = [{"env_steps": 0, "success_rate": 0.2}, {"env_steps": 26, "success_rate": 0.6}, {"env_steps": 31, "success_rate": 1.0}]
    curve = curve_over_seeds([one, two], curve_grid(30, 12))
    assert curve == {"env_steps": [0, 12, 24, 30], "mean": [0.2, 0.5, 0.7, 0.9], "std": [0.0, 0.1414, 0.1414, 0.1414],
                     "n_seeds": [2, 2, 2, 2]}
    assert curve_over_seeds([one], [0, 40]) == {"env_steps": [0, 40], "mean": [0.2, None], "std": [0.0, 0.0], "n_seeds": [1, 0]}
    path = plot_seed_curves({"dsrl_sac": curve, "dsrl_na": curve_over_seeds([one], [0, 40])}, tmp_path / "curve.png", "monkey")
    assert path.read_bytes().startswith(b"\x89PNG")
