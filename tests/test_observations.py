"""Observation modes: pixels (camera frames + proprio) by default everywhere, state (+ the simulator's object
positions) only when asked for, refused on a robot, and named on every result."""

import json

import pytest
from conftest import config_refusal

from dsrl_real.cli import main
from dsrl_real.config import PolicyConfig, load_config
from dsrl_real.config.observations import observation_label, observation_overrides

PIXELS = "pixels (third_person 64x64, wrist 64x64) + proprio"
STATE = "state: proprio + object_state (privileged, simulation only)"
REAL_CONFIGS = ("widowx_drawer", "widowx_monkey", "franka_drawer", "franka_pick")


def test_the_default_config_observes_camera_frames_and_proprio_only():
    cfg = load_config()
    assert (cfg.env.object_state, cfg.policy.vector_keys, cfg.policy.image_keys) == (False, ["proprio"],
                                                                                      ["third_person_image", "wrist_image"])
    assert observation_label(cfg) == PIXELS
    assert load_config(overrides=observation_overrides("pixels")) == cfg


def test_state_mode_is_labelled_privileged_simulation_only():
    cfg = load_config(overrides=observation_overrides("state"))
    assert (cfg.cameras, cfg.env.object_state, cfg.policy.vector_keys, cfg.policy.image_keys) == (
        [], True, ["proprio", "object_state"], [])
    assert observation_label(cfg) == STATE


def test_object_state_the_agent_alone_reads_is_named_too():
    """The agent reads every vector the env gives, so env.object_state is privileged even where the policy skips it."""
    cfg = load_config(overrides=["env.object_state=true"])
    assert observation_label(cfg) == f"{PIXELS} + object_state (privileged, simulation only)"


@pytest.mark.parametrize("name", REAL_CONFIGS)
def test_real_robot_configs_never_observe_object_state(name):
    cfg = load_config(name)
    assert not cfg.env.object_state and "object_state" not in cfg.policy.vector_keys
    assert observation_label(cfg).startswith("pixels (") and "privileged" not in observation_label(cfg)


@pytest.mark.parametrize(("overrides", "sentence"), [
    (["cameras=[]"],
     "policy.image_keys names 'third_person_image', but no configured camera gives it (the cameras give: none); add a camera "
     "named 'third_person' to cameras, or leave the key out, e.g. policy.image_keys=[] for a policy without images."),
    (["policy.image_keys=[top_image]"],
     "policy.image_keys names 'top_image', but no configured camera gives it (the cameras give: third_person_image, wrist_image); "
     "add a camera named 'top' to cameras, or leave the key out, e.g. policy.image_keys=[] for a policy without images."),
    (["policy.vector_keys=[proprio,object_state]"],
     "policy.vector_keys names object_state (privileged, simulation only), which needs env.object_state=true; set it "
     "(--obs state does both) or remove it, e.g. policy.vector_keys=[proprio]."),
    (["robot.kind=widowx", "policy.vector_keys=[proprio,object_state]"],
     "policy.vector_keys names object_state, the simulator's exact object positions (privileged, simulation only), which "
     "robot.kind = 'widowx' does not have; remove it, e.g. policy.vector_keys=[proprio]."),
    (["robot.kind=franka", "env.object_state=true"],
     "env.object_state=true adds the simulator's exact object positions (privileged, simulation only), which robot.kind = "
     "'franka' does not have; set env.object_state=false."),
])
def test_what_the_policy_reads_must_be_there(overrides, sentence):
    assert config_refusal(overrides) == sentence


def test_state_mode_on_a_real_robot_config_is_refused_in_one_sentence(capsys):
    assert main(["config", "-c", "widowx_drawer", "--obs", "state"]) == 2
    assert capsys.readouterr().err == (
        "dsrl-real: env.object_state=true adds the simulator's exact object positions (privileged, simulation only), which "
        "robot.kind = 'widowx' does not have; set env.object_state=false.\n")


def test_obs_selects_the_mode_beneath_the_dotted_overrides(capsys):
    assert main(["config", "--obs", "state", "policy.vector_keys=[proprio]", "env.object_state=false"]) == 0
    printed = capsys.readouterr().out
    assert "cameras: []\n" in printed and "  object_state: false\n" in printed and "  vector_keys:\n  - proprio\n  image_keys: []\n" in printed


def test_a_rollout_names_what_it_observed(capsys):
    assert main(["rollout", "--obs", "state", "run.episodes=1", "task.max_steps=5"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out.strip().splitlines()[-1])["observations"] == STATE
    assert "observations: state: proprio + object_state (privileged, simulation only)" in " ".join(out.err.split())


def test_a_bench_without_an_observation_mode_refuses_obs_in_one_sentence(capsys):
    assert main(["bench", "sim", "--obs", "state"]) == 2
    assert capsys.readouterr().err == "dsrl-real: dsrl-real bench sim takes no --obs; run it without --obs.\n"


def test_the_label_names_what_a_checkpoint_reads_where_the_policy_has_its_own_keys():
    class Pretrained:  # a checkpoint's policy: its own PolicyConfig
        cfg = PolicyConfig(image_keys=["wrist_image"])

    assert observation_label(load_config(), Pretrained()) == "pixels (wrist 64x64) + proprio"
    assert observation_label(load_config(), object()) == PIXELS  # an external policy without one: the config's keys
