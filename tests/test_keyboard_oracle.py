"""The human keyboard oracle through a pseudo-terminal, and the simulated human that types into it."""

import io
import os
import termios

import numpy as np
import pytest
from conftest import STATE

from dsrl_real.config import load_config
from dsrl_real.envs.make import build_env
from dsrl_real.rewards.base import EpisodeClip
from dsrl_real.rewards.keyboard import ENDS_EPISODE, HumanEvent, KeyboardOracle
from dsrl_real.rewards.simulated_human import SimulatedHuman, progress_score
from dsrl_real.rollout import scripted_expert
from dsrl_real.tasks import TaskStatus

HOLD = np.array([0, 0, 0, 0, 0, 0, 1.0], np.float32)


@pytest.fixture
def terminal():
    """A pseudo-terminal: the oracle reads the slave end, the test types into the master end."""
    master, slave = os.openpty()
    yield master, slave
    os.close(master)
    os.close(slave)


@pytest.fixture
def oracle_on(terminal):
    oracles = []

    def make(scale="binary"):
        oracles.append(KeyboardOracle(terminal[1], output=io.StringIO(), scale=scale))
        return oracles[-1]

    yield make
    for oracle in oracles:
        oracle.close()


def make_env(max_steps=70, terminate_on_success=True):
    cfg = load_config(overrides=[*STATE, f"task.max_steps={max_steps}",
                                 f"task.terminate_on_success={str(terminate_on_success).lower()}"])
    return build_env(cfg)


def episode_loop(env, oracle, act, on_step=lambda step, info: None, seed=0):
    """A control loop as the trainer runs it: step, then poll the human; stop on an ending key."""
    obs, info = env.reset(seed=seed)
    oracle.start_episode(env.task.instruction)
    events = []
    for step in range(env.task.max_steps):
        obs, _, terminated, truncated, info = env.step(act(obs))
        on_step(step, info)
        event = oracle.poll()
        events.append(event)
        if event in ENDS_EPISODE or terminated or truncated:
            return event, step, events, info
    raise AssertionError("the episode never ended")


def clip_of(info, instruction="pick up the brown monkey and put it on the yellow towel"):
    return EpisodeClip(frames={}, instruction=instruction, fps=5.0, truth=(info["task_status"],))


def status(progress, success=False):
    return TaskStatus(progress=progress, success=success, stage=0, stage_success=(success,), stage_progress=progress)


@pytest.mark.parametrize("key, event", [(b"s", HumanEvent.SUCCESS), (b"F", HumanEvent.FAILURE),
                                        (b" ", HumanEvent.ESTOP), (b"e", HumanEvent.ESTOP)])
def test_key_typed_between_steps_ends_the_episode_at_the_next_poll(terminal, oracle_on, key, event):
    master, _ = terminal
    oracle = oracle_on()
    env = make_env()

    def type_key(step, info):
        if step == 6:
            os.write(master, key)

    ended, step, events, info = episode_loop(env, oracle, lambda obs: HOLD, type_key)
    assert (ended, step) == (event, 6)
    assert events[:6] == [None] * 6
    if event is HumanEvent.ESTOP:
        return
    score = oracle.score_episode(clip_of(info))  # labelled by the key: no prompt
    assert (score.success, score.reward, score.score) == (event is HumanEvent.SUCCESS, float(event is HumanEvent.SUCCESS),
                                                        None)
    assert score.raw["source"] == "episode_key" and score.raw["answer"] == key.decode()
    assert score.raw["episode_keys"] == [{"key": key.decode(), "t": score.raw["t"], "event": event.value}]
    assert "Press s for success" not in oracle.output.getvalue()


def test_start_episode_prints_instructions(oracle_on):
    oracle = oracle_on()
    oracle.start_episode("pull the drawer out")
    text = oracle.output.getvalue()
    assert "pull the drawer out" in text
    assert "s success, f failure, p pause/resume, SPACE or e EMERGENCY STOP" in text


def test_pause_and_resume_toggle(terminal, oracle_on):
    master, _ = terminal
    oracle = oracle_on()
    oracle.start_episode("task")
    assert oracle.poll() is None and not oracle.paused
    os.write(master, b"p")
    assert oracle.poll() is HumanEvent.PAUSE and oracle.paused
    os.write(master, b"Pp")  # two presses between polls come out one per poll
    assert [oracle.poll(), oracle.poll(), oracle.poll()] == [HumanEvent.RESUME, HumanEvent.PAUSE, None]
    assert oracle.paused


def test_unknown_key_is_ignored_with_a_hint(terminal, oracle_on):
    master, _ = terminal
    oracle = oracle_on()
    oracle.start_episode("task")
    os.write(master, b"x\n")
    assert oracle.poll() is None
    assert "'x' is not a key here: s success" in oracle.output.getvalue()


def test_an_emergency_stop_typed_while_a_question_is_open_stops_the_next_episode(terminal, oracle_on):
    master, _ = terminal
    oracle = oracle_on()
    oracle.start_episode("task")
    os.write(master, b" s")  # SPACE is never an answer: noted, and the question takes the s
    answer, typed = oracle.ask("Did it succeed?", "sf", "press s or f.")
    assert answer == "s" and [k["key"] for k in typed] == ["s"]
    assert "[human] EMERGENCY STOP: the run stops before the next episode starts" in oracle.output.getvalue()
    oracle.start_episode("task")
    assert [oracle.poll(), oracle.poll()] == [HumanEvent.ESTOP, None]
    os.write(master, b"e")  # typed before a verify question, which drops what was typed before it: kept
    oracle.discard_typed()
    oracle.start_episode("task")
    assert oracle.poll() is HumanEvent.ESTOP


def test_keys_between_episodes_are_dropped_but_an_emergency_stop_stays(terminal, oracle_on):
    master, _ = terminal
    oracle = oracle_on()
    os.write(master, b"sf")
    oracle.start_episode("task")
    assert oracle.poll() is None
    os.write(master, b"s ")
    oracle.start_episode("task")
    assert [oracle.poll(), oracle.poll()] == [HumanEvent.ESTOP, None]


@pytest.mark.parametrize("typed, success", [(b"s", True), (b"xq\nf", False), (b"  S", True)])
def test_binary_prompt(terminal, oracle_on, typed, success):
    master, _ = terminal
    oracle = oracle_on("binary")
    oracle.start_episode("task")
    assert oracle.poll() is None
    os.write(master, typed)
    score = oracle.score_episode(EpisodeClip(frames={}, instruction="pull the drawer out", fps=5.0))
    assert (score.success, score.reward, score.score) == (success, float(success), None)
    assert score.raw["source"] == "prompt" and score.raw["answer"] == ("s" if success else "f")
    assert [k["key"] for k in score.raw["prompt_keys"]] == [c for c in typed.decode() if not c.isspace()]
    text = oracle.output.getvalue()
    assert "Episode over (pull the drawer out): did the robot succeed? Press s for success or f for failure." in text
    invalid = [c for c in typed.decode() if not c.isspace() and c.lower() not in "sf"]
    assert text.count("is not an answer: press s for success or f for failure.") == len(invalid)


@pytest.mark.parametrize("typed, score", [(b"3", 3), (b"09 5", 5), (b"s1", 1)])
def test_one_to_five_prompt(terminal, oracle_on, typed, score):
    master, _ = terminal
    oracle = oracle_on("1-5")
    oracle.start_episode("task")
    os.write(master, typed)
    result = oracle.score_episode(EpisodeClip(frames={}, instruction="task", fps=5.0))
    assert (result.score, result.reward, result.success) == (score, (score - 1) / 4, score == 5)
    text = oracle.output.getvalue()
    assert "Press 1-5." in text
    invalid = [c for c in typed.decode() if not c.isspace() and c not in "12345"]
    assert text.count("is not an answer: press 1, 2, 3, 4 or 5.") == len(invalid)


def test_one_to_five_after_a_failure_key_asks_for_one_to_four(terminal, oracle_on):
    master, _ = terminal
    oracle = oracle_on("1-5")
    oracle.start_episode("task")
    os.write(master, b"f")
    assert oracle.poll() is HumanEvent.FAILURE
    os.write(master, b"52")
    result = oracle.score_episode(EpisodeClip(frames={}, instruction="task", fps=5.0))
    assert (result.score, result.reward, result.success) == (2, 0.25, False)
    assert "'5' is not an answer: press 1, 2, 3 or 4." in oracle.output.getvalue()


def test_one_to_five_success_key_scores_five_without_a_prompt(terminal, oracle_on):
    master, _ = terminal
    oracle = oracle_on("1-5")
    oracle.start_episode("task")
    os.write(master, b"s")
    assert oracle.poll() is HumanEvent.SUCCESS
    result = oracle.score_episode(EpisodeClip(frames={}, instruction="task", fps=5.0))
    assert (result.score, result.reward, result.success, result.raw["source"]) == (5, 1.0, True, "episode_key")
    assert "Press 1-5" not in oracle.output.getvalue()


def test_terminal_is_in_cbreak_mode_while_open_and_restored_after_close(terminal):
    _, slave = terminal
    before = termios.tcgetattr(slave)
    assert before[3] & termios.ICANON and before[3] & termios.ECHO
    oracle = KeyboardOracle(slave, output=io.StringIO())
    lflag = termios.tcgetattr(slave)[3]
    assert not lflag & termios.ICANON and not lflag & termios.ECHO and lflag & termios.ISIG  # Ctrl-C still works
    oracle.close()
    assert termios.tcgetattr(slave) == before
    oracle.close()  # idempotent


def test_pipe_input_works_char_by_char_and_end_of_input_is_one_sentence():
    read_fd, write_fd = os.pipe()
    oracle = KeyboardOracle(read_fd, output=io.StringIO(), scale="1-5", close_fd=True)
    try:
        oracle.start_episode("task")
        os.write(write_fd, b"p\n")
        assert oracle.poll() is HumanEvent.PAUSE
        os.write(write_fd, b"4\n")
        assert oracle.score_episode(EpisodeClip(frames={}, instruction="task", fps=5.0)).score == 4
        oracle.start_episode("task")
        os.close(write_fd)
        assert oracle.poll() is None
        with pytest.raises(EOFError, match="input closed before the episode was labelled"):
            oracle.score_episode(EpisodeClip(frames={}, instruction="task", fps=5.0))
    finally:
        oracle.close()


def test_unknown_scale_is_one_clear_sentence(terminal):
    with pytest.raises(ValueError, match=r"Unknown human-oracle scale '0-10'; choose one of \['binary', '1-5'\]"):
        KeyboardOracle(terminal[1], scale="0-10")


def test_score_prefix_is_not_offered(oracle_on):
    with pytest.raises(NotImplementedError, match="no per-frame progress"):
        oracle_on().score_prefix(EpisodeClip(frames={}, instruction="task", fps=5.0))


@pytest.mark.parametrize("progress, success, expected", [(0.0, False, 1), (0.3, False, 2), (0.6, False, 3),
                                                         (0.99, False, 4), (1.0, False, 4), (1.0, True, 5)])
def test_progress_score(progress, success, expected):
    assert progress_score(status(progress, success)) == expected


def test_simulated_human_drives_whole_episodes_through_the_oracle():
    oracle, human = SimulatedHuman.with_oracle(scale="1-5", seed=0)
    try:
        env = make_env(max_steps=70, terminate_on_success=False)  # only the human's key ends a success
        successes = []

        def watch(step, info):
            successes.append(info["success"])
            human.observe(info["task_status"])

        ended, step, _, info = episode_loop(env, oracle, scripted_expert(env), watch)
        assert ended is HumanEvent.SUCCESS and successes.index(True) == step == len(successes) - 1 > 10
        human.answer_prompt(info["task_status"])  # typed anyway; the oracle needs no prompt
        score = oracle.score_episode(clip_of(info))
        assert (score.score, score.reward, score.success, score.raw["source"]) == (5, 1.0, True, "episode_key")

        env = make_env(max_steps=8)  # holding still: a failure at the time limit, answered at the prompt
        ended, step, _, info = episode_loop(env, oracle, lambda obs: HOLD,
                                            lambda step, info: human.observe(info["task_status"]), seed=1)
        assert ended is None and step == 7 and not info["success"]
        assert human.answer_prompt(info["task_status"]) == str(progress_score(info["task_status"]))
        score = oracle.score_episode(clip_of(info))
        expected = progress_score(info["task_status"])
        assert (score.score, score.success, score.raw["source"]) == (expected, False, "prompt")
        assert score.raw["prompt_keys"][0]["key"] == str(expected)
        assert score.raw["episode_keys"] == []  # the first episode's leftover '5' was dropped at the start
    finally:
        oracle.close()
        human.close()


def test_simulated_human_binary_labels_and_mislabels():
    oracle, human = SimulatedHuman.with_oracle(scale="binary", seed=0)
    try:
        for final in (status(1.0, True), status(0.4)):
            oracle.start_episode("task")
            human.answer_prompt(final)
            assert oracle.score_episode(EpisodeClip(frames={}, instruction="task", fps=5.0)).success == final.success
    finally:
        oracle.close()
        human.close()
    liar = SimulatedHuman(os.open(os.devnull, os.O_WRONLY), scale="binary", seed=3, mislabel_prob=1.0, close_fd=True)
    assert [liar.answer_prompt(status(1.0, True)), liar.answer_prompt(status(0.2))] == ["f", "s"]
    liar.close()
