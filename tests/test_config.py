import pytest

from dsrl_real.config import Config, ConfigError, load_config, resolve_config_path


def test_embedded_default_is_the_simulated_monkey_task():
    cfg = load_config()
    assert isinstance(cfg, Config)
    assert (cfg.robot.kind, cfg.task.name, cfg.robot.control_hz, cfg.task.max_steps) == ("sim", "monkey", 5.0, 70)
    assert [c.name for c in cfg.cameras] == ["third_person", "wrist"]


def test_yaml_then_dotted_overrides_layer_in_order(tmp_path):
    file = tmp_path / "mine.yaml"
    file.write_text("robot:\n  control_hz: 10\ntask:\n  name: drawer\n")
    cfg = load_config(str(file), ["robot.control_hz=15", "cameras.1.width=64", "safety.workspace_low=[0.1,-0.1,0.0]"])
    assert cfg.robot.control_hz == 15.0
    assert cfg.task.name == "drawer"
    assert cfg.cameras[1].width == 64
    assert cfg.safety.workspace_low == [0.1, -0.1, 0.0]


def test_unknown_key_names_the_valid_keys():
    with pytest.raises(ConfigError) as err:
        load_config(overrides=["robot.contrl_hz=10"])
    assert str(err.value) == (
        "Unknown config key 'robot.contrl_hz' in override 'robot.contrl_hz=10'; valid keys under 'robot' are: "
        "kind, robot_model, control_hz, start_xyz, start_rpy, driver_timeout_s, torque_off_on_close, franka."
    )


def test_unknown_key_in_yaml_names_file_and_valid_keys(tmp_path):
    file = tmp_path / "bad.yaml"
    file.write_text("cameras:\n  - name: top\n    resolution: 5\n")
    with pytest.raises(ConfigError, match=r"Unknown config key 'resolution' in .*bad\.yaml; valid keys under 'cameras\[\]' are: name, kind, view"):
        load_config(str(file))


def test_unknown_top_level_key():
    with pytest.raises(ConfigError, match="valid keys at the top level are: robot, cameras, safety, task, env, run, policy, demos, pretrain, agent, train, reward, learner."):
        load_config(overrides=["robto.kind=sim"])


def test_wrong_type_is_one_clear_sentence():
    with pytest.raises(ConfigError, match=r"^Config key 'task.max_steps' in override 'task.max_steps=abc' has the wrong type"):
        load_config(overrides=["task.max_steps=abc"])


def test_override_without_equals_sign():
    with pytest.raises(ConfigError, match="not of the form key=value"):
        load_config(overrides=["robot.kind"])


def test_missing_config_name_lists_known_configs():
    with pytest.raises(ConfigError, match="No config file 'nope'.*sim_monkey"):
        resolve_config_path("nope")


def test_every_shipped_config_loads():
    from pathlib import Path

    for file in sorted((Path(__file__).parents[1] / "configs").glob("*.yaml")):
        cfg = load_config(str(file))
        assert cfg.task.name


def test_paper_preset_sits_beneath_file_and_overrides(tmp_path):
    cfg = load_config(overrides=["agent.preset=widowx_real", "agent.utd=5"])
    assert (cfg.agent.hidden_dim, cfg.agent.gamma, cfg.agent.action_magnitude) == (1024, 0.97, 1.5)
    assert cfg.train.warm_start_episodes == 20 and cfg.agent.utd == 5  # the override wins
    franka = load_config(overrides=["agent.preset=franka_real"])
    assert (franka.agent.gamma, franka.agent.action_magnitude, franka.robot.control_hz, franka.task.max_steps) == (0.99, 2.5, 15.0, 200)
    sac, na = load_config(overrides=["agent.preset=sim_cpu"]), load_config(overrides=["agent.preset=sim_cpu_na"])
    assert (na.agent.algorithm, na.agent.gamma, na.agent.action_magnitude) == ("dsrl_na", 0.97, 1.0)
    assert (sac.agent.algorithm, sac.agent.gamma, sac.agent.action_magnitude) == ("dsrl_sac", 0.9, 1.5)
    same = ("algorithm", "gamma", "action_magnitude", "preset")
    assert {k: v for k, v in vars(na.agent).items() if k not in same} == {k: v for k, v in vars(sac.agent).items() if k not in same}
    with pytest.raises(ConfigError, match="Unknown agent.preset 'fast'; choose one of: sim_cpu, sim_cpu_na, widowx_real, franka_real."):
        load_config(overrides=["agent.preset=fast"])


def test_named_config_is_found_in_a_colcon_install_share(tmp_path, monkeypatch):
    share = tmp_path / "install" / "dsrl_real" / "share" / "dsrl_real" / "configs"
    share.mkdir(parents=True)
    (share / "lab_only.yaml").write_text("task:\n  max_steps: 33\n")
    monkeypatch.setenv("AMENT_PREFIX_PATH", f"/opt/ros/humble:{tmp_path / 'install' / 'dsrl_real'}")
    assert resolve_config_path("lab_only") == share / "lab_only.yaml"
    assert load_config("lab_only").task.max_steps == 33


def test_a_yaml_file_of_the_wrong_shape_is_one_sentence(tmp_path):
    top = tmp_path / "top.yaml"
    top.write_text("- robot\n- agent\n")
    with pytest.raises(ConfigError, match=r"top\.yaml holds a list at its top level; a config file holds sections such as robot: and agent:"):
        load_config(str(top))
    section = tmp_path / "section.yaml"
    section.write_text("robot: [1, 2]\n")
    with pytest.raises(ConfigError, match=r"^Invalid configuration in .*section\.yaml: Merge error: list is not a subclass of RobotConfig"):
        load_config(str(section))


def test_a_list_entry_of_the_wrong_type_is_named_as_such():
    with pytest.raises(ConfigError) as err:
        load_config(overrides=["safety.workspace_low=[a,b,c]"])
    assert str(err.value) == ("Config key 'safety.workspace_low[0]' in override 'safety.workspace_low=[a,b,c]' has the wrong type: "
                              "Value 'a' of type 'str' could not be converted to Float.")
