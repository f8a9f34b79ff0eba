"""The stand-in for a flawed reward model (sim_reward_model): over a fixed set of episodes with known closeness
scores, its false positives by closeness, false negatives and score errors match its parameters within sampling
error; an audit of its labels gives its parameters back; each bad setting is one sentence."""

import json

import numpy as np
import pytest
from conftest import config_refusal

from dsrl_real.analysis.audit import audit_pairs
from dsrl_real.config import ConfigError, load_config
from dsrl_real.recording.labels import score_label
from dsrl_real.recording.layout import write_json
from dsrl_real.rewards.base import EpisodeClip
from dsrl_real.rewards.registry import BACKENDS, build_reward_backend
from dsrl_real.rewards.simulated_human import progress_score
from dsrl_real.rewards.stand_in import SimRewardModelBackend, StandInParams
from dsrl_real.tasks import TaskStatus

START = TaskStatus(progress=0.0, success=False, stage=0, stage_success=(False, False), stage_progress=0.0)
# Final progress of a failed monkey episode at each closeness score: not grasped, barely, halfway, carried most of the way.
FAILED_PROGRESS = {1: 0.05, 2: 0.3, 3: 0.55, 4: 0.8}
REPEATS = 2000


def episode(progress: float, success: bool = False) -> EpisodeClip:
    final = TaskStatus(progress=progress, success=success, stage=2 if success else int(progress > 0.5),
                       stage_success=(success or progress > 0.5, success), stage_progress=progress)
    return EpisodeClip(frames={}, instruction="pick up the brown monkey and put it on the yellow towel", fps=5.0,
                       truth=(START, final))


EPISODES = {s: episode(p) for s, p in FAILED_PROGRESS.items()} | {5: episode(1.0, success=True)}


def stand_in(*overrides: str) -> SimRewardModelBackend:
    return build_reward_backend(load_config(overrides=["reward.backend=sim_reward_model", *overrides]))


def labels_by_closeness(backend, repeats: int = REPEATS) -> dict[int, list]:
    """Each of the five fixed episodes labelled `repeats` times, interleaved as a run would meet them."""
    out = {s: [] for s in EPISODES}
    for _ in range(repeats):
        for s, clip in EPISODES.items():
            out[s].append(backend.score_episode(clip))
    return out


def within_sampling_error(count: int, n: int, p: float) -> bool:
    """The share count/n is p exactly at p = 0 or 1, else within 4 binomial standard errors of it."""
    if p in (0.0, 1.0):
        return count == p * n
    return abs(count / n - p) <= 4 * np.sqrt(p * (1 - p) / n)


def test_the_fixed_episodes_have_the_closeness_scores_they_are_named_for():
    assert {s: progress_score(clip.truth[-1]) for s, clip in EPISODES.items()} == {1: 1, 2: 2, 3: 3, 4: 4, 5: 5}


def test_false_positives_by_closeness_false_negatives_and_score_errors_match_the_defaults():
    backend = stand_in("run.seed=3")
    p = backend.params
    assert p.false_positive_by_score == pytest.approx((0.0, 0.03, 0.12, 0.3)) and p.measured == ()
    assert (p.false_negative_rate, p.score_error_rate) == (0.05, 0.25)
    labels = labels_by_closeness(backend)
    for s in (1, 2, 3, 4):
        called = [x for x in labels[s] if x.success]
        assert within_sampling_error(len(called), REPEATS, p.false_positive_by_score[s - 1]), s
        assert all(x.score == 5 and x.reward == 1.0 and x.raw["flipped"] and not x.raw["score_moved"] for x in called)
        kept = [x for x in labels[s] if not x.success]
        moved = [x for x in kept if x.score != s]
        assert within_sampling_error(len(moved), len(kept), p.score_error_rate), s
        assert all(abs(x.score - s) == 1 and 1 <= x.score <= 4 and x.raw["score_moved"] for x in moved)
        assert all(x.reward == 0.0 and not x.raw["flipped"] for x in kept)
        assert all(x.raw["p_false_positive"] == p.false_positive_by_score[s - 1] and x.raw["closeness_score"] == s
                   and x.raw["truth_success"] is False and x.raw["truth_score"] == pytest.approx(1 + 4 * FAILED_PROGRESS[s])
                   for x in labels[s])
    # Moves stay on 1-4: always up from 1, always down from 4, either way (half and half) from 2 and 3.
    for s in (2, 3):
        moved = [x for x in labels[s] if not x.success and x.score != s]
        assert within_sampling_error(sum(x.score == s + 1 for x in moved), len(moved), 0.5)
    assert {x.score for x in labels[1] if not x.success} == {1, 2} and {x.score for x in labels[4] if not x.success} == {3, 4}
    missed = [x for x in labels[5] if not x.success]
    assert within_sampling_error(len(missed), REPEATS, p.false_negative_rate)
    assert all(x.score == 4 and x.reward == 0.0 and x.raw["flipped"] for x in missed)
    assert all(x.score == 5 and not x.raw["score_moved"] and x.raw["p_false_positive"] is None for x in labels[5] if x.success)


def test_near_miss_rate_times_shape_or_absolute_rates_by_closeness():
    backend = stand_in("reward.stand_in_near_miss_rate=0.5", "reward.stand_in_false_positive_shape=[0.2,0.0,0.6,1.0]")
    assert backend.params.false_positive_by_score == pytest.approx((0.1, 0.0, 0.3, 0.5))
    backend = stand_in("reward.stand_in_false_positive_by_score=[1.0,0.0,1.0,0.0]", "reward.stand_in_false_negative_rate=1.0",
                       "reward.stand_in_score_error_rate=0.0")
    labels = labels_by_closeness(backend, repeats=20)
    assert [all(x.success for x in labels[s]) for s in (1, 3, 5)] == [True, True, False]
    assert [any(x.success for x in labels[s]) for s in (2, 4)] == [False, False]
    assert [x.score for x in labels[2] + labels[4]] == [2] * 20 + [4] * 20


def test_the_labels_are_repeatable_from_run_seed():
    def run(seed):
        return [(x.success, x.score) for xs in labels_by_closeness(stand_in(f"run.seed={seed}"), 200).values() for x in xs]

    assert run(7) == run(7) and run(7) != run(8)


# ---- from an audit --------------------------------------------------------------------------------------------------------
def human(clip: EpisodeClip) -> dict:
    """The simulated human's 1-5 label: the final state's progress score."""
    score = progress_score(clip.truth[-1])
    return {"score": score, "success": score == 5, "reward": (score - 1) / 4}


def write_audit_of(path, backend, episodes, name="sim_reward_model"):
    """audit.json as `dsrl-real audit` writes it, for `backend` labelling `episodes` against the simulated human."""
    pairs = [(human(clip), score_label(backend.score_episode(clip))) for clip in episodes]
    write_json(path, {"reference": "human", "backends": {name: audit_pairs(pairs, resamples=0)}})
    return pairs


def test_an_audit_of_a_stand_in_gives_its_parameters_back(tmp_path):
    known = StandInParams((0.05, 0.1, 0.2, 0.4), false_negative_rate=0.1, score_error_rate=0.3)
    n = 300
    pairs = write_audit_of(tmp_path / "audit.json", SimRewardModelBackend(known, seed=11), list(EPISODES.values()) * n)
    read = stand_in(f"reward.stand_in_from_audit={tmp_path / 'audit.json'}").params
    assert read.measured == ("false_negative_rate", "false_positive_at_score_1", "false_positive_at_score_2",
                             "false_positive_at_score_3", "false_positive_at_score_4", "score_error_rate")
    # Exactly what the stand-in did on these episodes, by its own raw record ...
    raws = [b["raw"] for _, b in pairs]
    for s in (1, 2, 3, 4):
        flipped = sum(r["flipped"] for r in raws if r["closeness_score"] == s)
        assert read.false_positive_by_score[s - 1] == flipped / n
        assert within_sampling_error(flipped, n, known.false_positive_by_score[s - 1])
    missed = sum(r["flipped"] for r in raws if r["truth_success"])
    assert read.false_negative_rate == missed / n and within_sampling_error(missed, n, known.false_negative_rate)
    kept = [r for r in raws if not r["truth_success"] and not r["flipped"]]
    moved = sum(r["score_moved"] for r in kept)
    assert read.score_error_rate == pytest.approx(moved / len(kept))
    assert within_sampling_error(moved, len(kept), known.score_error_rate)
    # ... and the replaying backend says in each label what was measured.
    label = stand_in(f"reward.stand_in_from_audit={tmp_path}").score_episode(EPISODES[4])  # the run folder holding audit.json
    assert label.raw["measured"] == list(read.measured) and label.raw["p_false_positive"] == read.false_positive_by_score[3]


def test_figures_an_audit_lacks_keep_their_configured_values(tmp_path):
    """No failures at closeness 2 and no successes: those rates stay as configured; a binary human gives no 1-5 figures."""
    backend = SimRewardModelBackend(StandInParams((0.5, 0.5, 0.5, 0.5), 0.5, 0.5), seed=0)
    write_audit_of(tmp_path / "a.json", backend, [EPISODES[1], EPISODES[3], EPISODES[4]] * 50)
    read = stand_in(f"reward.stand_in_from_audit={tmp_path / 'a.json'}", "reward.stand_in_false_negative_rate=0.07").params
    assert read.measured == ("false_positive_at_score_1", "false_positive_at_score_3", "false_positive_at_score_4",
                             "score_error_rate")
    assert read.false_positive_by_score[1] == pytest.approx(0.03) and read.false_negative_rate == 0.07
    pairs = [({"success": h["success"], "reward": float(h["success"])}, b)
             for h, b in write_audit_of(tmp_path / "b.json", backend, list(EPISODES.values()) * 20)]
    write_json(tmp_path / "b.json", {"backends": {"sim_reward_model": audit_pairs(pairs, resamples=0)}})
    read = stand_in(f"reward.stand_in_from_audit={tmp_path / 'b.json'}").params
    assert read.measured == ("false_negative_rate",)
    assert read.false_positive_by_score == pytest.approx((0.0, 0.03, 0.12, 0.3)) and read.score_error_rate == 0.25


# ---- bad settings ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("overrides", "sentence"), [
    (["reward.stand_in_near_miss_rate=1.5"], "reward.stand_in_near_miss_rate = 1.5 is out of range; it must be in [0, 1]."),
    (["reward.stand_in_false_negative_rate=-0.1"],
     "reward.stand_in_false_negative_rate = -0.1 is out of range; it must be in [0, 1]."),
    (["reward.stand_in_score_error_rate=.nan"],
     "reward.stand_in_score_error_rate = nan is not a finite number; it must be in [0, 1]."),
    (["reward.stand_in_false_positive_shape=[0.1,0.4,1.0]"],
     "reward.stand_in_false_positive_shape = [0.1, 0.4, 1.0] has 3 entries; it must have exactly 4."),
    (["reward.stand_in_false_positive_shape=[0.0,0.1,0.4,0.5]"],
     "reward.stand_in_false_positive_shape = [0.0, 0.1, 0.4, 0.5] ends in 0.5, but its last entry (closeness 4) must be 1, "
     "as reward.stand_in_near_miss_rate is the false-positive rate there; scale the others relative to it, or give the 4 "
     "rates in reward.stand_in_false_positive_by_score."),
    (["reward.stand_in_false_positive_by_score=[0.1,0.2,0.3]"],
     "reward.stand_in_false_positive_by_score = [0.1, 0.2, 0.3] has 3 entries; give 4 probabilities (closeness 1, 2, 3, 4) "
     "or none, to use reward.stand_in_near_miss_rate * reward.stand_in_false_positive_shape."),
    (["reward.stand_in_false_positive_by_score=[0.1,2.0,0.3,0.4]"],
     "reward.stand_in_false_positive_by_score[1] = 2.0 is out of range; it must be in [0, 1]."),
    (["reward.stand_in_audit_backend=roboreward"],
     "reward.stand_in_audit_backend = 'roboreward' picks a backend of an audit, but reward.stand_in_from_audit names none; "
     "set it to the audit.json, or leave the backend empty."),
])
def test_a_bad_setting_is_one_sentence_from_the_config(overrides, sentence):
    assert config_refusal(["reward.backend=sim_reward_model", *overrides]) == sentence


def test_a_bad_audit_is_one_sentence_naming_what_to_give(tmp_path):
    (tmp_path / "junk.json").write_text("{not json")
    write_json(tmp_path / "empty.json", {"reference": "human", "backends": {}})
    write_json(tmp_path / "two.json", {"backends": {"roboreward": {}, "robometer": {}}})
    write_json(tmp_path / "bad.json", {"backends": {"roboreward": {"false_negative_rate": {"value": 1.5, "n": 2}}}})
    where = {name: tmp_path / name for name in ("junk.json", "empty.json", "two.json", "bad.json")}
    cases = {
        (f"{tmp_path / 'none.json'}", ""):
            f"reward.stand_in_from_audit = '{tmp_path / 'none.json'}' is no file; give the audit.json that `dsrl-real audit "
            "RUN` wrote (in the run's folder or its --out folder), or leave it empty to use the reward.stand_in_* rates.",
        (f"{where['junk.json']}", ""):
            f"reward.stand_in_from_audit = '{where['junk.json']}' is not readable as JSON (JSONDecodeError); give the "
            "audit.json that `dsrl-real audit RUN` wrote.",
        (f"{where['empty.json']}", ""):
            f"reward.stand_in_from_audit = '{where['empty.json']}' holds no audited backends; give the audit.json that "
            "`dsrl-real audit RUN` wrote.",
        (f"{where['two.json']}", ""):
            f"reward.stand_in_from_audit = '{where['two.json']}' audits 2 backends (roboreward, robometer); set "
            "reward.stand_in_audit_backend to the one whose errors to replay.",
        (f"{where['two.json']}", "human"):
            f"reward.stand_in_audit_backend = 'human' is not in the audit '{where['two.json']}'; it audits: roboreward, robometer.",
        (f"{where['bad.json']}", ""):
            f"The audit '{where['bad.json']}' gives false_negative_rate = 1.5, which is not a rate in [0, 1]; rerun "
            "`dsrl-real audit` on the run to rewrite it.",
    }
    for (path, backend), sentence in cases.items():
        with pytest.raises(ConfigError) as err:
            stand_in(f"reward.stand_in_from_audit={path}", f"reward.stand_in_audit_backend='{backend}'")
        assert str(err.value) == sentence
    assert stand_in(f"reward.stand_in_from_audit={where['two.json']}", "reward.stand_in_audit_backend=robometer").params.measured == ()


def test_a_config_built_in_code_past_the_checks_is_still_one_sentence():
    cfg = load_config(overrides=["reward.backend=sim_reward_model"])
    cfg.reward.stand_in_false_positive_by_score = [0.1, 0.2]
    with pytest.raises(ConfigError, match=r"^Bad reward.stand_in_\* setting: false_positive_by_score needs 4 probabilities "
                                          r"\(closeness 1-4\), got 2.$"):
        build_reward_backend(cfg)


def test_the_stand_in_is_a_listed_backend_that_needs_simulator_truth():
    assert "sim_reward_model" in BACKENDS
    assert load_config(overrides=["reward.shadow=[sim_truth,sim_reward_model]"]).reward.shadow[1] == "sim_reward_model"
    with pytest.raises(ValueError, match="needs simulator ground truth; use it with robot.kind=sim"):
        stand_in().score_episode(EpisodeClip(frames={}, instruction="x", fps=5.0))
    json.dumps(score_label(stand_in().score_episode(EPISODES[3])))  # its label goes into the recording as it is
