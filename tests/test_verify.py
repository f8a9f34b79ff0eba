"""Verify positives (reward.verify): the keyboard through a pseudo-terminal confirms or rejects each success
the reward backend claims, training uses the answer, the recording keeps both labels, and the progress
numbers, metrics.jsonl, `report` and `audit` show what the answers measured."""

import io
import json
import logging
import os
import select

import numpy as np
import pytest
from conftest import FAST_TRAIN, config_refusal

from dsrl_real.analysis.audit import audit_run
from dsrl_real.analysis.report import summarize_run
from dsrl_real.analysis.verify_summary import verify_line, verify_summary
from dsrl_real.cli import main
from dsrl_real.config import ConfigError, load_config
from dsrl_real.envs.safety import EmergencyStop
from dsrl_real.recording import RecordedRun
from dsrl_real.recording.seeding import seed_transitions
from dsrl_real.rewards.base import EPISODE_SCORE, PROGRESS, SUCCESS, EpisodeScore, ProgressScore
from dsrl_real.rewards.human_verifier import KeyboardVerifier
from dsrl_real.rewards.keyboard import KeyboardOracle
from dsrl_real.rewards.verify import (
    CLAIMED_SUCCESS,
    FAILURE_CHECK,
    SamplingPlan,
    Verification,
    VerifyPositives,
    VerifyRequest,
    training_flags,
    training_score,
)
from dsrl_real.rollout import wilson_interval
from dsrl_real.train.trainer import DSRLTrainer

# The detector ends a claimed success at once (a step per stage); a claimed failure runs its 12 steps. Every episode
# is a warm-start one: the answers decide what enters the replay buffer, and no gradient step needs compiling.
RUN = [*FAST_TRAIN, "train.eval_episodes=0", "train.warm_start_episodes=1000", "reward.end_on=detector", "reward.scoring=inline",
       "reward.success_window=1"]


class Typist(io.StringIO):
    """The verifier's terminal output; each question is answered by typing the next scripted keys into the
    terminal (None: no answer), before the verifier reads."""

    def __init__(self, master: int, answers=()):
        super().__init__()
        self.master, self.answers, self.questions = master, list(answers), []

    def write(self, text):
        if "Verify:" in text:
            self.questions.append(text.strip())
            keys = self.answers.pop(0)
            if keys:
                os.write(self.master, keys.encode())
        return super().write(text)


@pytest.fixture
def keyboard():
    """`keyboard(answers)`: a KeyboardVerifier on a fresh pseudo-terminal, its Typist, the master end (the
    test types there) and the slave end (the verifier reads there; open until the test ends)."""
    made = []

    def make(answers=()):
        master, slave = os.openpty()
        typist = Typist(master, answers)
        verifier = KeyboardVerifier(KeyboardOracle(slave, output=typist))
        made.append((verifier, master, slave))
        return verifier, typist, master, slave

    yield make
    for verifier, master, slave in made:
        verifier.close()
        os.close(master)
        os.close(slave)


class Claims:
    """A reward model whose claims come from a script, one per episode: success (a success probability of 1
    on every prefix, so the detector ends the episode at its first step) or failure (0: the time limit ends it)."""

    name, offers = "claims", frozenset({EPISODE_SCORE, PROGRESS, SUCCESS})

    def __init__(self, claims):
        self.claims, self.scored = list(claims), 0

    def _claim(self) -> bool:
        return self.claims[min(self.scored, len(self.claims) - 1)]

    def score_prefix(self, clip):
        return ProgressScore(np.zeros(max(len(clip.truth), 1), np.float32), float(self._claim()))

    def score_episode(self, clip):
        claim = self._claim()
        self.scored += 1
        return EpisodeScore(reward=float(claim), success=claim, score=5 if claim else 2, raw={"episode": self.scored})


class Asked:
    """A verifier that answers from a script and keeps every request."""

    name = "human"

    def __init__(self, answers=()):
        self.answers, self.requests = list(answers), []

    def ask(self, request, timeout_s):
        self.requests.append(request)
        return self.answers.pop(0)

    def close(self):
        pass


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def by_episode(buffer):
    """The replay buffer's rewards and end flags per episode id, over its chunk steps."""
    c = buffer.columns()
    steps = c["starts"][:buffer.num_time_indices]
    out = {}
    for slot in np.flatnonzero(steps):
        rewards, terminated, truncated = out.setdefault(int(c["episode"][slot]), ([], [], []))
        rewards.append(float(c["reward"][slot]))
        terminated.append(bool(c["terminated"][slot]))
        truncated.append(bool(c["truncated"][slot]))
    return out


def train(out, *overrides, backend=None, verifier=None):
    trainer = DSRLTrainer(load_config(overrides=[*RUN, f"train.out_dir={out}", *overrides]), reward_backend=backend,
                          verifier=verifier)
    try:
        trainer.run()
    finally:
        trainer.close()
    return trainer


# ---- the question and what the answer means ---------------------------------------------------------------
def test_only_claimed_successes_are_asked_unless_failures_are_drawn_for_a_check():
    success, failure = EpisodeScore(1.0, True, 5), EpisodeScore(0.25, False, 2)
    verifier = Asked(["n", "y"])
    verify = VerifyPositives(verifier, timeout_s=30.0)
    assert verify.check(failure, "do it", "claims") == Verification()  # nobody asked
    assert verify.check(success, "do it", "claims", truth=("t",)).fields() == {"verify": CLAIMED_SUCCESS, "answer": "n", "verified": True}
    assert verify.check(success, "do it", "claims").success is True
    assert [(r.kind, r.keys, r.backend, r.truth) for r in verifier.requests] == [
        (CLAIMED_SUCCESS, "yn", "claims", ("t",)), (CLAIMED_SUCCESS, "yn", "claims", ())]
    # reward.verify_failure_fraction: that share of the claimed failures, from the run's seed, asked s or f
    checks = [VerifyPositives(Asked(["f"] * 1000), 30.0, failure_fraction=0.3, seed=seed) for seed in (0, 0, 1)]
    asked = [[v.check(failure, "do it", "claims").asked for _ in range(400)] for v in checks]
    assert asked[0] == asked[1] != asked[2] and set(asked[0]) == {None, FAILURE_CHECK}
    assert abs(asked[0].count(FAILURE_CHECK) / 400 - 0.3) < 4 * np.sqrt(0.3 * 0.7 / 400)
    assert VerifyRequest(FAILURE_CHECK, "do it", "claims").keys == "sf"
    with pytest.raises(ValueError, match=r"^The verify timeout must be positive seconds, got 0.$"):
        VerifyPositives(verifier, timeout_s=0)


class Draws:
    """A stand-in random generator whose draws come from a script."""

    def __init__(self, draws):
        self.draws = list(draws)

    def random(self):
        return self.draws.pop(0)


def test_the_sampling_plan_asks_every_claim_until_the_clearance_then_a_share_until_a_rejection():
    plan = SamplingPlan(clearance=3, fraction=0.25)
    rng = Draws([0.9, 0.1, 0.2])
    asked = []
    for answer in ["y", "n", "y", "y", None, "y", "(not asked)", "y", "n", "y"]:
        asks = plan.asks(rng)
        asked.append(asks)
        if asks:
            plan.answered(answer)
    # every claim until three confirmed in a row (a rejection restarts the count, no answer does not), then a
    # quarter: draws 0.9 (not asked), 0.1 (asked: y), 0.2 (asked: n), then every claim again, with no draw
    assert asked == [True, True, True, True, True, True, False, True, True, True]
    assert (plan.sampling, plan.confirmed_in_a_row, rng.draws) == (False, 1, [])
    every = SamplingPlan()
    for _ in range(50):
        every.answered("y")
    assert every.asks(None) and not every.sampling  # clearance 0: every claim, and no draw is taken
    with pytest.raises(ValueError, match=r"^The share of claimed successes to spot-check must lie in \(0, 1\], got 0.$"):
        SamplingPlan(3, 0)


def test_a_claim_the_plan_leaves_out_asks_no_one_and_a_resumed_run_takes_up_the_plan_where_it_stood():
    success = EpisodeScore(1.0, True, 5)
    verifier = Asked(["y", "y"])
    verify = VerifyPositives(verifier, 30.0, plan=SamplingPlan(clearance=2, fraction=1e-9))
    assert [verify.check(success, "do it", "claims").asked for _ in range(4)] == [CLAIMED_SUCCESS, CLAIMED_SUCCESS, None, None]
    assert len(verifier.requests) == 2  # the two claims left out were never put to the verifier
    resumed = VerifyPositives(Asked(), 30.0, plan=SamplingPlan(clearance=2, fraction=1e-9))
    resumed.resume([Verification(CLAIMED_SUCCESS, "y").fields(), Verification().fields(), Verification(CLAIMED_SUCCESS, "y").fields()])
    assert resumed.plan.sampling and resumed.check(success, "do it", "claims") == Verification()
    resumed.resume([Verification(CLAIMED_SUCCESS, "n").fields()])
    assert not resumed.plan.sampling


def test_the_human_overrules_the_label_where_they_disagree_and_a_rejected_success_ends_as_a_failure():
    claim = EpisodeScore(1.0, True, 5, raw="model")
    rejected, confirmed, late = Verification(CLAIMED_SUCCESS, "n"), Verification(CLAIMED_SUCCESS, "y"), Verification(CLAIMED_SUCCESS)
    assert training_score(claim, rejected) == EpisodeScore(0.0, False, None, raw={"verify": CLAIMED_SUCCESS, "answer": "n"})
    assert training_score(claim, confirmed) is claim and training_score(claim, late) is claim
    assert late.verified is False and late.success is None and Verification().verified is None
    missed = EpisodeScore(0.25, False, 2)
    assert training_score(missed, Verification(FAILURE_CHECK, "s")) == EpisodeScore(1.0, True, None, raw={"verify": FAILURE_CHECK, "answer": "s"})
    assert training_score(missed, Verification(FAILURE_CHECK, "f")) is missed
    assert training_flags(True, False, rejected) == (False, True)
    assert training_flags(True, False, confirmed) == (True, False) == training_flags(True, False, None)
    assert training_flags(False, True, Verification(FAILURE_CHECK, "s")) == (False, True)


def test_the_keyboard_takes_one_answer_after_the_question_and_none_when_the_time_runs_out(keyboard):
    verifier, typist, master, _ = keyboard(["xN", None])
    os.write(master, b"y")  # typed before the question: dropped, an answer comes after it
    request = VerifyRequest(CLAIMED_SUCCESS, "put the monkey on the towel", "claims")
    assert verifier.ask(request, timeout_s=30.0) == "n"
    assert verifier.ask(request, timeout_s=0.01) is None
    output = typist.getvalue()
    assert typist.questions == ["[human] Verify: the claims reward says the robot succeeded (put the monkey on the towel). "
                                "Press y if it did, n if it did not."] * 2
    assert "[human] 'x' is not an answer: press y or n." in output


# ---- training through the pseudo-terminal ------------------------------------------------------------------
class Watcher(io.StringIO):
    """The verifier's terminal output; at the start of each watched episode it types that episode's scripted keys."""

    def __init__(self, master: int, keys_per_episode=()):
        super().__init__()
        self.master, self.keys = master, list(keys_per_episode)

    def write(self, text):
        if "[human] Episode:" in text and self.keys:
            os.write(self.master, self.keys.pop(0).encode())
        return super().write(text)


def test_the_person_verifying_keeps_the_emergency_stop_during_the_models_episodes(tmp_path):
    master, slave = os.openpty()
    watcher = Watcher(master, ["s", " "])  # episode 1: s is no key while the model labels; episode 2: SPACE
    verifier = KeyboardVerifier(KeyboardOracle(slave, output=watcher, close_fd=True))
    try:
        with pytest.raises(EmergencyStop, match="^Emergency stop pressed: the robot is holding its position"):
            train(tmp_path / "run", "reward.verify=human", "train.env_steps=48", backend=Claims([False]), verifier=verifier)
    finally:
        os.close(master)
    output = watcher.getvalue()
    assert output.count("[human] Keys: p pause/resume, SPACE or e EMERGENCY STOP, Ctrl-C quit") == 2
    assert "[human] 's' is not a key here: p pause/resume, SPACE or e EMERGENCY STOP" in output
    assert "[human] EMERGENCY STOP" in output
    episodes = [r for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "episode"]
    assert [r["length"] for r in episodes] == [12]  # the first ran its 12 steps; the stop ended the second at once


@pytest.fixture(scope="module")
def verified_run(tmp_path_factory):
    """Four claimed successes, each ending its episode at the first step: the human rejects the first (after a
    stray key), confirms the second, lets the third time out, and rejects the fourth (two-step episodes: the task has two stages)."""
    out = tmp_path_factory.mktemp("verified") / "run"
    master, slave = os.openpty()
    typist = Typist(master, ["xn", "y", None, "n"])
    verifier = KeyboardVerifier(KeyboardOracle(slave, output=typist, close_fd=True))
    try:
        trainer = train(out, "reward.verify=human", "reward.verify_timeout_s=0.05", "train.env_steps=8",
                        "reward.verify_warn_false_positive_rate=0.5", backend=Claims([True]), verifier=verifier)
    finally:
        os.close(master)
    return out, trainer, typist


def test_a_claimed_success_rejected_by_a_key_trains_as_a_failure(verified_run):
    out, trainer, typist = verified_run
    assert trainer.episodes == 4 and len(typist.questions) == 4
    episodes = by_episode(trainer.buffer)
    assert episodes == {0: ([0.0], [False], [True]),  # rejected: reward 0, not terminal, as a failure ends
                        1: ([1.0], [True], [False]),  # confirmed: the backend's label
                        2: ([1.0], [True], [False]),  # no answer in time: the backend's label stands
                        3: ([0.0], [False], [True])}
    records = [r for r in read_jsonl(out / "metrics.jsonl") if r["kind"] == "episode"]
    assert [r["verification"] for r in records] == [
        {"verify": CLAIMED_SUCCESS, "answer": "n", "verified": True}, {"verify": CLAIMED_SUCCESS, "answer": "y", "verified": True},
        {"verify": CLAIMED_SUCCESS, "answer": None, "verified": False}, {"verify": CLAIMED_SUCCESS, "answer": "n", "verified": True}]
    assert [r["reward"] for r in records] == [0.0, 1.0, 1.0, 0.0]
    last = records[-1]["verify_summary"]
    assert (last["episodes"], last["needed_human"], last["verified"], last["unverified"], last["rejected"]) == (4, 4, 3, 1, 2)
    assert last["false_positive_share"] == {"value": 2 / 3, "ci95": list(wilson_interval(2, 3)), "count": 2, "n": 3}
    assert last["false_negative_share"]["n"] == 0 and last["precision"]["value"] == 1 / 3
    assert last["warning"].startswith("The human rejected 2 of the 3 successes claims claimed, a false-positive share of 67% (95% CI")
    assert records[1]["verify_summary"]["warning"] is None  # 1 of 2 rejected: 50%, not past the threshold
    assert verify_line(last) == ("verified 3 (1 unanswered) · rejected 2/3 claimed, FP 67% [21%-94%] · human 4/4 episodes · "
                                 "WARNING: false positives above 50%")
    assert verify_line(records[1]["verify_summary"]) == "verified 2 · rejected 1/2 claimed, FP 50% [9%-91%] · human 2/2 episodes"


def test_the_recording_keeps_the_backends_label_the_humans_answer_and_the_training_label(verified_run):
    out, trainer, _ = verified_run
    run = RecordedRun(out)
    assert run.run_meta["meta"]["reward_label"] == "training" and run.run_meta["meta"]["verify"] == "human"
    labels = [r["labels"] for r in run.records]
    assert [lab["claims"]["success"] for lab in labels] == [True] * 4 and [lab["claims"]["score"] for lab in labels] == [5] * 4
    assert [lab.get("human", {}).get("success") for lab in labels] == [False, True, None, False]
    assert labels[0]["human"]["raw"]["verify"] == CLAIMED_SUCCESS and labels[0]["human"]["raw"]["answer"] == "n"
    training = [lab["training"] for lab in labels]
    assert [(t["success"], t["reward"], t["verified"], t["answer"], t["terminated"], t["truncated"]) for t in training] == [
        (False, 0.0, True, "n", False, True), (True, 1.0, True, "y", True, False), (True, 1.0, False, None, True, False),
        (False, 0.0, True, "n", False, True)]
    # Read back as training read it (seeding, a restarted learner): the training label's rewards and end flags.
    space = trainer.env.observation_space
    seeded = list(seed_transitions(out, observation_space=space, noise_shape=trainer.policy.noise_shape,
                                   chunk_shape=(trainer.policy.chunk_size, trainer.policy.action_dim),
                                   label=trainer.trained_label, form="sparse"))
    assert [(e["rewards"].tolist(), e["terminated"], e["truncated"]) for e in seeded] == [
        (rewards, terminated[-1], truncated[-1]) for rewards, terminated, truncated in by_episode(trainer.buffer).values()]


def test_audit_and_report_read_a_verify_positives_run(verified_run, tmp_path, capsys):
    out, _, _ = verified_run
    result = audit_run(out, resamples=50)
    v = result["verify_positives"]
    assert result["labelled_episodes"] == 3 and list(result["backends"]) == ["claims"]  # the asked and answered episodes
    assert (v["backend"], v["episodes"], v["needed_human"], v["unverified"], v["rejected"]) == ("claims", 4, 4, 1, 2)
    assert v["precision"]["value"] == 1 / 3 and v["false_positive_share"]["ci95"] == list(wilson_interval(2, 3))
    assert main(["audit", str(out), "--out", str(tmp_path / "audit"), "--resamples", "50"]) == 0
    printed = capsys.readouterr()  # the tables and lines on stderr, the JSON on stdout
    assert "A verify-positives run: the human labelled only the successes claims claimed" in " ".join(printed.err.split())
    assert json.loads(printed.out.strip().splitlines()[-1])["verify_positives"]["rejected"] == 2
    summary = summarize_run(out)
    assert summary["verify"] == verify_summary([{"verify": CLAIMED_SUCCESS, "answer": a} for a in ("n", "y", None, "n")], 0.5, "claims")
    assert "verify-positives" in summary["agreement"]["note"]
    assert main(["report", str(out), "--out", str(tmp_path / "report")]) == 0
    printed = " ".join(capsys.readouterr().err.split())
    assert "Verify positives (claims): verified 3 (1 unanswered) · rejected 2/3 claimed, FP 67% [21%-94%]" in printed
    assert "The human rejected 2 of the 3 successes claims claimed" in printed


def test_a_claimed_failure_asks_nothing(tmp_path, keyboard):
    verifier, typist, master, slave = keyboard()
    os.write(master, b"y")  # a key typed before the run: dropped when the first episode starts, not an answer
    trainer = train(tmp_path / "run", "reward.verify=human", "train.env_steps=24", backend=Claims([False]), verifier=verifier)
    assert trainer.episodes == 2 and typist.questions == [] and "Verify:" not in typist.getvalue()  # no question
    assert typist.getvalue().count("[human] Episode:") == 2  # the keyboard watched both episodes (pause, emergency stop)
    assert not select.select([slave], [], [], 0)[0]
    assert all(rewards == [0.0, 0.0, 0.0] and truncated[-1] for rewards, _, truncated in by_episode(trainer.buffer).values())
    labels = [r["labels"] for r in RecordedRun(tmp_path / "run").records]
    assert all("human" not in lab and lab["training"]["verified"] is None and lab["training"]["verify"] is None for lab in labels)


# ---- in simulation ------------------------------------------------------------------------------------------
def test_the_simulated_human_rejects_a_noisy_backends_false_successes_and_the_run_warns(tmp_path, caplog):
    """sim_truth_noisy calls half the (all failed) episodes a success; every episode is asked (failures as checks)
    and the simulated human answers from the simulator's truth, through the keyboard's pseudo-terminal."""
    with caplog.at_level(logging.WARNING, logger="dsrl_real.train.trainer"):
        trainer = train(tmp_path / "run", "reward.backend=sim_truth_noisy", "reward.noisy_false_positive_rate=0.5",
                        "reward.verify=sim_human", "reward.verify_failure_fraction=1.0", "reward.end_on=auto",
                        "train.env_steps=96")
    records = [r for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "episode"]
    claims = [r["labels"]["sim_truth_noisy"]["success"] for r in RecordedRun(tmp_path / "run").records]
    assert len(records) == 8 and 0 < sum(claims) < 8 and not any(r["success"] for r in records)
    assert [r["verification"]["answer"] for r in records] == ["n" if c else "f" for c in claims]
    assert all(rewards == [0.0, 0.0, 0.0] for rewards, _, _ in by_episode(trainer.buffer).values())  # trained on the truth
    last = records[-1]["verify_summary"]
    assert (last["rejected"], last["claimed_successes"], last["failure_checks"], last["needed_human"]) == (sum(claims), sum(claims), 8 - sum(claims), 8)
    assert last["false_positive_share"]["value"] == 1.0 and last["false_negative_share"]["value"] == 0.0
    low, high = wilson_interval(0, 8 - sum(claims))
    assert f" · FN 0% [{low:.0%}-{high:.0%}] of {8 - sum(claims)} checked · human 8/8 episodes · WARNING" in verify_line(last)
    warnings = [m.getMessage() for m in caplog.records if m.getMessage().startswith("The human rejected")]
    assert warnings == [records[claims.index(True)]["verify_summary"]["warning"]]  # once, when it first applied
    result = audit_run(tmp_path / "run", resamples=20)
    assert result["verify_positives"]["false_negative_share"]["n"] == 8 - sum(claims)


# ---- settings -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("overrides, message", [
    (["reward.verify=human", "reward.backend=sim_human"],
     "reward.verify = 'human' asks a human to confirm a reward model's successes, but reward.backend = 'sim_human' is a human already; "
     "set reward.verify=none or choose a model backend."),
    (["reward.verify=sim_human", "reward.backend=robometer", "reward.form=dense"],
     "reward.verify = 'sim_human' confirms success labels, but reward.form = 'dense' trains on the backend's progress instead; "
     "use reward.form=sparse or step_penalty, or reward.verify=none."),
    (["reward.verify=sim_human", "reward.backend=sim_truth_noisy", "reward.shadow=[sim_human]"],
     "reward.verify = 'sim_human' records the verifier's answers as the human labels, so reward.shadow = ['sim_human'] cannot hold "
     "a human backend too; drop it from reward.shadow."),
    (["reward.verify=sim_human", "robot.kind=widowx"],
     "reward.verify = 'sim_human' answers from the simulator's truth, but robot.kind = 'widowx'; use reward.verify=human on a robot."),
    (["reward.verify_failure_fraction=0.1"],
     "reward.verify_failure_fraction = 0.1 asks a human about claimed failures, which happens only with reward.verify=human "
     "(or sim_human in simulation); set one, or leave the fraction at 0."),
    (["reward.verify_clearance=10"],
     "reward.verify_clearance = 10 plans which claimed successes a human checks, which happens only with reward.verify=human "
     "(or sim_human in simulation); set one, or leave it at 0."),
    (["reward.verify=sim_human", "reward.verify_sample_fraction=0"],
     "reward.verify_sample_fraction = 0.0 is out of range; it must be in (0, 1]."),
])
def test_verify_settings_that_cannot_work_are_one_sentence(overrides, message):
    assert config_refusal(overrides) == message


def test_verify_values_out_of_range_are_one_sentence():
    with pytest.raises(ConfigError, match=r"^reward\.verify_timeout_s = 0\.0 .*\(0, 3600\]"):
        load_config(overrides=["reward.verify_timeout_s=0.0"])
    with pytest.raises(ConfigError, match=r"^reward\.verify = 'always' is not allowed; it must be one of: none, human, sim_human\.$"):
        load_config(overrides=["reward.verify=always"])
