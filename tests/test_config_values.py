"""Every config value is checked where it is declared: for each field of the schema (enumerated from
the dataclasses, never listed by hand) values it does not accept raise one ConfigError sentence naming
the dotted key, the value and what it accepts; the values it does accept, boundaries included, pass."""

from __future__ import annotations

import copy
import math
import re
import typing
from pathlib import Path

import pytest
import yaml
from conftest import config_refusal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsrl_real.config import (
    PRESETS,
    Allowed,
    ConfigError,
    check_config,
    check_fields,
    config_fields,
    load_config,
)

FIELDS = [(key, hint, allowed) for key, hint, allowed in config_fields() if hint is not bool]
DEFAULT = load_config()
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _kind(hint) -> type:
    return typing.get_args(hint)[0] if typing.get_origin(hint) is list else hint


def _bounds(interval: str) -> tuple[float, float, bool, bool]:
    """The test's own reading of an interval such as '(0, 1]' (independent of config.py's)."""
    opening, low, high, closing = re.fullmatch(r"([\[(])(\S+), (\S+)([\])])", interval).groups()
    named = {"inf": math.inf, "-inf": -math.inf, "pi": math.pi, "-pi": -math.pi}
    low_v, high_v = (named[end] if end in named else float(end) for end in (low, high))
    return low_v, high_v, opening == "[", closing == "]"


def _concrete(key: str) -> str:
    """`cameras[].width` -> `cameras[0].width`, the key of the default config's first camera."""
    return key.replace("[]", "[0]")


def _set(cfg, key: str, value) -> None:
    *path, last = re.split(r"\.", _concrete(key))
    node = cfg
    for part in path:
        name, _, index = part.partition("[")
        node = getattr(node, name)
        if index:
            node = node[int(index.rstrip("]"))]
    setattr(node, last, value)


def _with(key: str, value):
    cfg = copy.deepcopy(DEFAULT)
    _set(cfg, key, value)
    return cfg


def _refusal(key: str, value) -> str:
    with pytest.raises(ConfigError) as err:
        check_fields(_with(key, value))
    return str(err.value)


def _assert_one_sentence_naming(message: str, key: str, allowed: Allowed) -> None:
    assert "\n" not in message and message.endswith(".")
    assert re.match(rf"^{re.escape(_concrete(key))}(\[\d+\])? = ", message), message
    if allowed.interval:
        assert allowed.interval in message or "entries" in message
    elif allowed.choices:
        assert "it must be one of: " + ", ".join(map(str, allowed.choices)) in message or "entries" in message


NUMBERS = [f for f in FIELDS if f[2].interval]
CHOICES = [f for f in FIELDS if f[2].choices]
NONEMPTY = [f for f in FIELDS if f[2].nonempty]
SIZED = [f for f in FIELDS if f[2].length is not None or f[2].min_length]


def ids(fields):
    return [key for key, _, _ in fields]


# ---- the schema: nothing is left unchecked ----------------------------------------------------------------------------
def test_every_field_declares_what_it_accepts():
    assert len(FIELDS) > 100  # every section, cameras included
    assert [key for key, _, allowed in FIELDS if allowed is None] == []
    for key, hint, allowed in FIELDS:
        if _kind(hint) in (int, float):  # every number has a range or a list of choices
            assert allowed.interval or allowed.choices, key
        else:
            assert _kind(hint) is str and not allowed.interval, key


def test_every_number_range_is_bounded_on_both_sides():
    for key, _, allowed in NUMBERS:
        low, high, _, _ = _bounds(allowed.interval)
        assert math.isfinite(low) and math.isfinite(high) and low < high, key


def test_declared_choices_match_the_modules_that_act_on_them():
    from dsrl_real.agents.dsrl.encoder import AUGMENTATIONS
    from dsrl_real.agents.dsrl.spec import ACTIVATIONS, ALGORITHMS
    from dsrl_real.envs.make import CAMERA_KINDS, ROBOT_KINDS
    from dsrl_real.rewards.registry import BACKENDS, HUMAN_SCALES
    from dsrl_real.rewards.scoring import END_ON, SCORING
    from dsrl_real.rewards.shaping import FORMS
    from dsrl_real.rewards.verify import VERIFY_MODES
    from dsrl_real.rollout.demos import DEMO_FORMATS
    from dsrl_real.sim.render import MIN_SIZE, VIEWS

    choices = {key: allowed.choices for key, _, allowed in CHOICES}
    assert choices["agent.algorithm"] == ALGORITHMS and choices["agent.activation"] == tuple(ACTIVATIONS)
    assert choices["agent.image_augmentation"] == AUGMENTATIONS and choices["demos.format"] == DEMO_FORMATS
    assert choices["robot.kind"] == ROBOT_KINDS and choices["cameras[].kind"] == CAMERA_KINDS
    assert choices["cameras[].view"] == VIEWS
    assert choices["reward.backend"] == BACKENDS and choices["reward.shadow"] == BACKENDS
    assert choices["reward.human_scale"] == HUMAN_SCALES and choices["reward.form"] == FORMS
    assert choices["reward.end_on"] == END_ON and choices["reward.scoring"] == SCORING
    assert choices["reward.verify"] == VERIFY_MODES
    sides = {key: _bounds(allowed.interval) for key, _, allowed in NUMBERS if key in ("cameras[].width", "cameras[].height")}
    assert [low for low, _, _, _ in sides.values()] == [MIN_SIZE, MIN_SIZE]  # the simulator renders no smaller


# ---- numbers ------------------------------------------------------------------------------------------------------------
def _outside(hint, interval: str):
    """Values outside the interval: non-finite (floats), below it, above it, and huge ones."""
    low, high, low_in, high_in = _bounds(interval)
    if _kind(hint) is int:
        below = st.integers(max_value=math.ceil(low) - 1 if low_in else math.floor(low))
        above = st.integers(min_value=math.floor(high) + 1 if high_in else math.ceil(high))
        return st.one_of(below, above, st.sampled_from([-10**30, 10**30]))
    below = st.floats(max_value=low, exclude_max=low_in, allow_nan=False)
    above = st.floats(min_value=high, exclude_min=high_in, allow_nan=False)
    return st.one_of(st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308]), below, above)


def _inside(hint, interval: str):
    low, high, low_in, high_in = _bounds(interval)
    if _kind(hint) is int:
        return st.integers(math.ceil(low) if low_in else math.floor(low) + 1, math.floor(high) if high_in else math.ceil(high) - 1)
    return st.floats(low, high, exclude_min=not low_in, exclude_max=not high_in)


@pytest.mark.parametrize(("key", "hint", "allowed"), NUMBERS, ids=ids(NUMBERS))
@FAST
@given(data=st.data())
def test_a_number_outside_its_range_is_one_sentence_naming_the_key(key, hint, allowed, data):
    bad = data.draw(_outside(hint, allowed.interval))
    if typing.get_origin(hint) is list:
        length = allowed.length or max(allowed.min_length, 1)
        entries = [data.draw(_inside(hint, allowed.interval)) for _ in range(length)]
        index = data.draw(st.integers(0, length - 1))
        entries[index] = bad
        message = _refusal(key, entries)
        assert message.startswith(f"{_concrete(key)}[{index}] = ")
    else:
        message = _refusal(key, bad)
        assert message.startswith(f"{_concrete(key)} = {bad} is ")
    _assert_one_sentence_naming(message, key, allowed)
    assert ("is not a finite number" in message) == (isinstance(bad, float) and not math.isfinite(bad))


@pytest.mark.parametrize(("key", "hint", "allowed"), NUMBERS, ids=ids(NUMBERS))
@FAST
@given(data=st.data())
def test_a_number_inside_its_range_passes(key, hint, allowed, data):
    low, high, low_in, high_in = _bounds(allowed.interval)
    # The ends themselves (or the nearest number inside an open end), then anything inside.
    ends = [low if low_in else (math.nextafter(low, math.inf) if _kind(hint) is float else math.floor(low) + 1),
            high if high_in else (math.nextafter(high, -math.inf) if _kind(hint) is float else math.ceil(high) - 1)]
    value = data.draw(st.one_of(st.sampled_from(ends), _inside(hint, allowed.interval)))
    value = int(value) if _kind(hint) is int else float(value)
    check_fields(_with(key, [value] * (allowed.length or max(allowed.min_length, 1)) if typing.get_origin(hint) is list else value))


# ---- choices, text and list sizes ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("key", "hint", "allowed"), CHOICES, ids=ids(CHOICES))
@FAST
@given(data=st.data())
def test_a_value_that_is_not_a_choice_is_refused_and_each_choice_passes(key, hint, allowed, data):
    bad = data.draw((st.integers() if _kind(hint) is int else st.text(max_size=20)).filter(lambda v: v not in allowed.choices))
    message = _refusal(key, [bad] if typing.get_origin(hint) is list else bad)
    assert message.endswith(f"is not allowed; it must be one of: {', '.join(map(str, allowed.choices))}.")
    _assert_one_sentence_naming(message, key, allowed)
    choice = data.draw(st.sampled_from(allowed.choices))
    check_fields(_with(key, [choice] if typing.get_origin(hint) is list else choice))


@pytest.mark.parametrize(("key", "hint", "allowed"), NONEMPTY, ids=ids(NONEMPTY))
@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_string_is_refused_where_a_name_or_path_is_needed(key, hint, allowed, blank):
    is_list = typing.get_origin(hint) is list
    message = _refusal(key, ["ok", blank] if is_list else blank)
    assert message == f"{_concrete(key)}{'[1]' if is_list else ''} = {blank!r} is empty; it must be a non-empty string."
    check_fields(_with(key, ["ok"] if is_list else "ok"))


@pytest.mark.parametrize(("key", "hint", "allowed"), SIZED, ids=ids(SIZED))
@FAST
@given(data=st.data())
def test_a_list_of_the_wrong_size_is_refused(key, hint, allowed, data):
    size = data.draw(st.integers(0, 8).filter(lambda n: n != allowed.length if allowed.length is not None else n < allowed.min_length))
    low, high, _, _ = _bounds(allowed.interval)
    entries = [_kind(hint)((low + high) / 2)] * size
    need = f"exactly {allowed.length}" if allowed.length is not None else f"at least {allowed.min_length}"
    assert _refusal(key, entries) == f"{_concrete(key)} = {entries} has {size} entries; it must have {need}."


@pytest.mark.parametrize(("key", "hint", "allowed"), FIELDS, ids=ids(FIELDS))
def test_the_wrong_type_set_past_omegaconf_is_refused(key, hint, allowed):
    """A value of the wrong type (set in code, past OmegaConf's own type check) is refused as well."""
    kind = _kind(hint)
    bad = "12" if kind in (int, float) else 12
    if kind is int:
        bad = 1.5 if not allowed.choices else "12"
    value = [bad] if typing.get_origin(hint) is list else bad
    _assert_one_sentence_naming(_refusal(key, value), key, allowed)


# ---- through load_config: an override of every field goes through the same check -------------------------------------
def _override_text(value) -> str:
    return yaml.safe_dump(value, default_flow_style=True).removesuffix("\n...\n").strip()


def _one_bad_value(hint, allowed: Allowed):
    if allowed.interval:
        low, high, low_in, high_in = _bounds(allowed.interval)
        bad = math.nan if _kind(hint) is float else int(high) + 1
    elif allowed.choices:
        bad = "not-a-choice" if _kind(hint) is str else 7
    else:
        bad = ""
    if typing.get_origin(hint) is list:
        return [bad] * (allowed.length or max(allowed.min_length, 1))
    return bad


CHECKED = [f for f in FIELDS if f[2].interval or f[2].choices or f[2].nonempty]


@pytest.mark.parametrize(("key", "hint", "allowed"), CHECKED, ids=ids(CHECKED))
def test_a_bad_override_of_every_field_is_one_sentence_naming_the_key(key, hint, allowed):
    bad = _one_bad_value(hint, allowed)
    override = f"{key.replace('[]', '.0')}={_override_text(bad)}"
    with pytest.raises(ConfigError) as err:
        load_config(overrides=[override])
    _assert_one_sentence_naming(str(err.value), key, allowed)


def test_the_examples_of_the_issue_are_refused_in_words():
    cases = {
        "robot.control_hz=nan": "robot.control_hz = nan is not a finite number; it must be in (0, 1000].",
        "robot.control_hz=.inf": "robot.control_hz = inf is not a finite number; it must be in (0, 1000].",
        "robot.control_hz=0": "robot.control_hz = 0.0 is out of range; it must be in (0, 1000].",
        "agent.gamma=2": "agent.gamma = 2.0 is out of range; it must be in [0, 1).",
        "agent.batch_size=0": "agent.batch_size = 0 is out of range; it must be in [1, 65536].",
        "agent.learning_rate=-0.001": "agent.learning_rate = -0.001 is out of range; it must be in (0, 1].",
        "pretrain.learning_rate=0": "pretrain.learning_rate = 0.0 is out of range; it must be in (0, 1].",
        "agent.action_magnitude=nan": "agent.action_magnitude = nan is not a finite number; it must be in (0, 10].",
        "run.episodes=-1": "run.episodes = -1 is out of range; it must be in [0, 1e6].",
        "run.eval_episodes=-5": "run.eval_episodes = -5 is out of range; it must be in [0, 1e6].",
        "train.eval_episodes=-1": "train.eval_episodes = -1 is out of range; it must be in [0, 1e6].",
        "cameras.0.width=100000": "cameras[0].width = 100000 is out of range; it must be in [16, 1024].",
        "safety.workspace_low=[0.15,.nan,0.02]": "safety.workspace_low[1] = nan is not a finite number; it must be in [-2, 2].",
        "agent.tau=0": "agent.tau = 0.0 is out of range; it must be in (0, 1].",
        "reward.noisy_false_positive_rate=1.5": "reward.noisy_false_positive_rate = 1.5 is out of range; it must be in [0, 1].",
        "reward.server_timeout_s=.inf": "reward.server_timeout_s = inf is not a finite number; it must be in (0, 3600].",
        "robot.kind=ur5": "robot.kind = 'ur5' is not allowed; it must be one of: sim, widowx, franka.",
        "train.out_dir=''": "train.out_dir = '' is empty; it must be a non-empty string.",
    }
    for override, sentence in cases.items():
        assert config_refusal([override]) == sentence, override


def test_a_bad_value_in_a_yaml_file_is_refused_like_an_override(tmp_path):
    file = tmp_path / "lab.yaml"
    file.write_text("agent:\n  gamma: .nan\n")
    with pytest.raises(ConfigError, match=r"^agent.gamma = nan is not a finite number; it must be in \[0, 1\).$"):
        load_config(str(file))


def test_a_value_outside_a_literal_is_refused_in_the_same_sentence_wherever_it_comes_from(tmp_path):
    """OmegaConf refuses a Literal's non-choices itself; the sentence is still check_fields' (and names the entry of a
    list of sections merged whole, which OmegaConf's own error does not)."""
    file = tmp_path / "cams.yaml"
    file.write_text("cameras:\n  - name: a\n  - name: b\n    kind: zz\n")
    cases = {
        (str(file), ()): "cameras[1].kind = 'zz' is not allowed; it must be one of: sim, realsense, ros_topic.",
        (None, ("cameras=[{name: a, fps: 5}]",)): "cameras[0].fps = 5 is not allowed; it must be one of: 6, 15, 30, 60.",
        (None, ("robot.kind=1",)): "robot.kind = '1' is not allowed; it must be one of: sim, widowx, franka.",
        (None, ("reward.shadow=[sim_truth,7]",)): "reward.shadow[1] = '7' is not allowed; it must be one of: "
                                                  "sim_truth, roboreward, robometer, human, sim_human, sim_truth_noisy, "
                                                  "sim_reward_model.",
        (None, ("cameras.0.fps=30.0",)): "cameras[0].fps = 30.0 is not allowed; it must be one of: 6, 15, 30, 60.",
    }
    for (path, overrides), sentence in cases.items():
        assert config_refusal(overrides, path) == sentence, (path, overrides)


# ---- relations between fields -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("overrides", "sentence"), [
    (["safety.workspace_low=[0.15,0.3,0.02]"],
     "safety.workspace_low[1] = 0.3 is not below safety.workspace_high[1] = 0.2; the safety box needs each low smaller "
     "than its high, on every axis."),
    (["safety.rpy_high=[0.5,0.7,0.8]"],
     "safety.rpy_low[1] = 0.7 is not below safety.rpy_high[1] = 0.7; the safety box needs each low smaller than its high, "
     "on every axis."),
    (["robot.start_xyz=[0.5,0.0,0.16]"],
     "robot.start_xyz = [0.5, 0.0, 0.16] is outside the safety box from safety.workspace_low = [0.15, -0.2, 0.02] to "
     "safety.workspace_high = [0.42, 0.2, 0.25]; every reset would take the arm there, so move the start inside the box "
     "or widen it."),
    (["robot.start_rpy=[0.0,0.0,0.0]"],
     "robot.start_rpy = [0.0, 0.0, 0.0] is outside the safety box from safety.rpy_low = [-0.5, 0.7, -0.8] to "
     "safety.rpy_high = [0.5, 1.5, 0.8]; every reset would take the arm there, so move the start inside the box or widen it."),
    (["cameras.1.name=third_person"], "cameras[1].name = 'third_person' is taken by an earlier camera; it must be unique."),
    (["policy.inference_steps=200"],
     "policy.inference_steps = 200 is out of range; it must be in [1, policy.train_diffusion_steps = 100]."),
    (["agent.backup_subset=6"], "agent.backup_subset = 6 is out of range; it must be in [0, agent.num_critics = 5]."),
])
def test_relations_between_fields_are_one_sentence(overrides, sentence):
    assert config_refusal(overrides) == sentence


def test_the_relations_accept_their_boundaries():
    cfg = load_config(overrides=["robot.start_xyz=[0.15,-0.2,0.25]", "robot.start_rpy=[0.5,0.7,-0.8]",
                                 "policy.inference_steps=100", "agent.backup_subset=5"])
    assert check_config(cfg) is cfg


# ---- what ships still loads -------------------------------------------------------------------------------------------
CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("file", CONFIGS, ids=[f.stem for f in CONFIGS])
@pytest.mark.parametrize("preset", ["", *PRESETS])
def test_every_shipped_config_loads_with_every_preset(file, preset):
    cfg = load_config(str(file), [f"agent.preset={preset}"] if preset else [])
    assert check_config(cfg) is cfg
