"""The dsrl_real ROS 2 node: its logic without rclpy, its rclpy part through the fake, and how every run ends."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import types
from pathlib import Path

import numpy as np
import pytest
from conftest import STATE
from fakes import rclpy_fake

from dsrl_real.config import ConfigError, load_config
from dsrl_real.envs.make import build_env
from dsrl_real.policies.checkpoint import CheckpointError
from dsrl_real.ros import node as node_module
from dsrl_real.ros.node import GuardedRobot, NodeParams, NodeRun, node_config, serve

HOLD = np.array([0, 0, 0, 0, 0, 0, 1.0])


class Log:
    """Collects what the node logs (the ROS logger's info/warning/error)."""

    def __init__(self):
        self.records: list[tuple[str, str]] = []

    def info(self, message):
        self.records.append(("INFO", message))

    def warning(self, message):
        self.records.append(("WARNING", message))

    def error(self, message):
        self.records.append(("ERROR", message))

    @property
    def last(self) -> tuple[str, str]:
        return self.records[-1]


class SpyRobot:
    """Wraps the env's robot and records stop/close/command, with the thread each came from."""

    def __init__(self, robot, events: list):
        self.robot, self.events = robot, events

    def __getattr__(self, name):
        return getattr(self.robot, name)

    def command(self, target, duration_s):
        self.events.append(("command", threading.get_ident()))
        return self.robot.command(target, duration_s)

    def stop(self):
        self.events.append(("stop", threading.get_ident()))
        self.robot.stop()

    def close(self):
        self.events.append(("close", threading.get_ident()))
        self.robot.close()


class FakeTrainer:
    """Stands in for DSRLTrainer without JAX: plays episodes of `steps` env steps, keeps its counters and checkpoints."""

    created = threading.Event()  # set when any FakeTrainer exists (tests wait on it from other threads)

    def __init__(self, cfg, env, steps: int = 4, episodes: int = 5000, restorable: bool = True):
        self.cfg, self.env, self.out_dir = cfg, env, Path(cfg.train.out_dir)
        self.steps, self.total, self.restorable = steps, episodes, restorable
        self.episodes = self.env_steps = 0
        self.saved: list[Path] = []
        self.closed = False
        self.stepping = threading.Event()
        self.resumed = None
        FakeTrainer.created.set()

    def run(self, resume=False):
        self.resumed = resume
        while self.episodes < self.total:
            self.env.reset(seed=self.episodes)
            for _ in range(self.steps):
                self.env.step(HOLD)
                self.env_steps += 1
            self.episodes += 1
            if not self.stepping.is_set():  # one episode done, the next one under way
                self.stepping.set()
                print("STEPPING", flush=True)
        return {"episodes": self.episodes, "env_steps": self.env_steps, "final_success_rate": 0.25}

    def restore(self):
        return self.restorable

    def evaluate(self, episodes):
        return {"success_rate": 0.5, "ci95": (0.1, 0.9)}

    def save_checkpoint(self):
        folder = self.out_dir / "checkpoints" / f"episode_{self.episodes:06d}"
        folder.mkdir(parents=True, exist_ok=True)
        self.saved.append(folder)
        return folder

    def close(self):
        self.closed = True
        self.env.close()


def sim_cfg(tmp_path, *overrides):
    return [*STATE, f"train.out_dir={tmp_path}", *overrides]


# ---- parameters -> config -------------------------------------------------------------------------
def test_parameters_become_the_config():
    params = NodeParams.from_dict({"config": "widowx_monkey", "mode": "eval", "reward_backend": "sim_truth",
                                   "resume": True, "use_sim": False, "overrides": ["train.env_steps=123"]})
    assert params.overrides == ("train.env_steps=123",)
    cfg = node_config(params)
    assert (cfg.robot.kind, cfg.reward.backend, cfg.train.env_steps, cfg.agent.hidden_dim) == ("widowx", "sim_truth", 123, 1024)


def test_bad_parameters_are_one_sentence():
    with pytest.raises(ConfigError) as info:
        NodeParams.from_dict({"mode": "fly"})
    assert str(info.value) == "Node parameter mode is 'fly'; choose one of: train, eval, human_oracle."
    with pytest.raises(ConfigError, match=r"^Unknown node parameter\(s\) speed; the node takes: config, mode, "
                                          r"reward_backend, resume, use_sim, learner_address, overrides\.$"):
        NodeParams.from_dict({"speed": 2})
    with pytest.raises(ConfigError) as info:
        node_config(NodeParams(mode="human_oracle", reward_backend="roboreward"))
    assert str(info.value) == ("mode human_oracle trains with the human reward, but reward_backend is 'roboreward'; "
                               "leave reward_backend empty or use mode train.")


def test_the_learner_address_puts_the_learner_on_ray():
    assert (node_config(NodeParams()).learner.mode, node_config(NodeParams()).learner.address) == ("inline", "")
    local = node_config(NodeParams(learner_address="local")).learner
    assert (local.mode, local.address) == ("ray", "")
    remote = node_config(NodeParams(learner_address="ray://gpu-box:10001", overrides=("learner.max_policy_lag=2",))).learner
    assert (remote.mode, remote.address, remote.max_policy_lag) == ("ray", "ray://gpu-box:10001", 2)


def test_human_oracle_trains_with_the_human_reward():
    assert node_config(NodeParams(mode="human_oracle")).reward.backend == "human"
    assert node_config(NodeParams(mode="human_oracle", reward_backend="human")).reward.backend == "human"
    assert node_config(NodeParams(mode="train")).reward.backend == load_config().reward.backend


def test_use_sim_runs_the_task_on_the_simulated_tabletop():
    cfg = node_config(NodeParams(config="widowx_monkey", use_sim=True))
    assert cfg.robot.kind == "sim"
    assert [(c.name, c.kind, c.view, c.width, c.height) for c in cfg.cameras] == [("third_person", "sim", "third_person", 128, 128)]
    assert cfg.agent.hidden_dim == 1024  # the rest of the config stays
    with pytest.raises(ConfigError) as info:
        node_config(NodeParams(config="franka_drawer", use_sim=True))
    assert str(info.value) == ("use_sim runs the simulated tabletop, which has the tasks monkey, drawer, but this config's "
                               "task is 'franka_drawer'; set use_sim false or pick a config for one of those tasks.")


# ---- how runs end ---------------------------------------------------------------------------------
def test_ctrl_c_mid_training_stops_the_arm_saves_a_checkpoint_and_closes_the_env(tmp_path):
    """The real trainer on the simulator; Ctrl-C arrives in the middle of the second training episode."""
    from dsrl_real.train.trainer import DSRLTrainer

    events, held = [], {}

    class CtrlCInSecondEpisode(SpyRobot):
        def command(self, target, duration_s):
            trainer = held.get("trainer")
            if trainer is not None and trainer.episodes == 1 and sum(e == "command" for e, _ in events[held["since"]:]) == 3:
                raise KeyboardInterrupt
            if trainer is not None and trainer.episodes == 0:
                held["since"] = len(events) + 1
            return super().command(target, duration_s)

    def env_factory(cfg):
        env = build_env(cfg)
        env.robot = CtrlCInSecondEpisode(env.robot, events)
        return env

    def trainer_factory(cfg, env):
        trainer = held["trainer"] = DSRLTrainer(cfg, env=env)
        save = trainer._save_checkpoint

        def spied_save(records):
            events.append(("checkpoint", threading.get_ident()))
            return save(records)

        trainer._save_checkpoint = spied_save
        return trainer

    overrides = sim_cfg(tmp_path, "policy.external=dsrl_real.policies.examples:scaled_noise_policy", "train.wandb=disabled",
                        "train.eval_episodes=0", "train.eval_every_steps=100000", "train.warm_start_episodes=2",
                        "agent.hidden_dim=32", "agent.batch_size=8", "agent.utd=1", "task.max_steps=8")
    log = Log()
    run = NodeRun(NodeParams(overrides=tuple(overrides)), log, env_factory=env_factory, trainer_factory=trainer_factory)
    assert run.execute() == 0
    assert log.last == ("INFO", f"Interrupted (Ctrl-C or SIGTERM); the arm was stopped, a checkpoint was saved to "
                                f"{tmp_path}/checkpoints/episode_000001 and the environment was closed.")
    names = [e for e, _ in events]
    interrupted = max(i for i, name in enumerate(names) if name == "command") + 1
    # The arm stops first (the trainer's stop, then the node's), and only then are checkpoints written; no command after.
    assert names[interrupted:] == ["stop", "checkpoint", "stop", "checkpoint", "close"] and "stop" not in names[:interrupted]
    assert (tmp_path / "LATEST").read_text() == "episode_000001"
    counters = json.loads((tmp_path / "checkpoints" / "episode_000001" / "counters.json").read_text())
    assert counters["episodes"] == 1 and counters["env_steps"] == 8  # the finished episode; not the interrupted one
    assert len(held["trainer"].buffer) == 2  # its two chunk steps of 4 actions are in the saved buffer


def test_emergency_stop_from_a_ros_callback_stops_the_arm_at_once_and_ends_the_run(tmp_path):
    events, trainers = [], []

    def env_factory(cfg):
        env = build_env(cfg)
        env.robot = SpyRobot(env.robot, events)
        return env

    def trainer_factory(cfg, env):
        trainers.append(FakeTrainer(cfg, env))
        return trainers[0]

    log = Log()
    run = NodeRun(NodeParams(overrides=tuple(sim_cfg(tmp_path))), log, env_factory=env_factory, trainer_factory=trainer_factory)

    FakeTrainer.created.clear()

    def press_estop():  # what the ~/emergency_stop subscription does, from the executor's thread
        assert FakeTrainer.created.wait(30) and trainers[0].stepping.wait(30)
        run.emergency_stop("a message on /dsrl_real/emergency_stop")
        events.append(("estop done", threading.get_ident()))

    presser = threading.Thread(target=press_estop)
    presser.start()
    assert run.execute() == 0
    presser.join()
    first_stop = events.index(next(e for e in events if e[0] == "stop"))
    assert events[first_stop][1] == presser.ident  # stopped in the callback's thread, not when the loop noticed
    assert ("command", threading.get_ident()) not in events[first_stop:]  # nothing sent after the stop
    assert [e for e, _ in events[-2:]] == ["stop", "close"]
    assert log.records[-2] == ("WARNING", "Emergency stop: a message on /dsrl_real/emergency_stop.")
    assert log.last == ("INFO", f"Emergency stop (a message on /dsrl_real/emergency_stop); the arm was stopped, a "
                                f"checkpoint was saved to {trainers[0].saved[-1]} and the environment was closed.")
    assert trainers[0].closed


def test_a_failure_mid_run_ends_safely_in_one_sentence(tmp_path):
    class FailingTrainer(FakeTrainer):
        def run(self, resume=False):
            self.episodes = 2
            raise RuntimeError("The Franka pose on /x is 0.80 s old (limit 0.5 s); restart it.")

    log = Log()
    run = NodeRun(NodeParams(overrides=tuple(sim_cfg(tmp_path))), log, trainer_factory=FailingTrainer)
    assert run.execute() == 1
    assert log.last == ("ERROR", f"The Franka pose on /x is 0.80 s old (limit 0.5 s); restart it; the arm was stopped, a "
                                 f"checkpoint was saved to {tmp_path}/checkpoints/episode_000002 and the environment was closed.")


def test_any_user_error_mid_run_exits_2_like_the_cli(tmp_path):
    class FullDiskTrainer(FakeTrainer):
        def run(self, resume=False):
            raise CheckpointError("Writing the checkpoint of episode 3 failed (No space left on device); free the space.")

    log = Log()
    assert NodeRun(NodeParams(overrides=tuple(sim_cfg(tmp_path))), log, trainer_factory=FullDiskTrainer).execute() == 2
    assert log.last[0] == "ERROR" and log.last[1].startswith("Writing the checkpoint of episode 3 failed")


def test_eval_mode_restores_and_evaluates_and_refuses_an_empty_folder(tmp_path):
    log = Log()
    assert NodeRun(NodeParams(mode="eval", overrides=tuple(sim_cfg(tmp_path))), log, trainer_factory=FakeTrainer).execute() == 0
    assert log.last == ("INFO", "Evaluation finished: success rate 50% over 20 episodes (95% CI 10%-90%); the environment "
                                "was closed.")
    log = Log()
    run = NodeRun(NodeParams(mode="eval", overrides=tuple(sim_cfg(tmp_path))), log,
                  trainer_factory=lambda cfg, env: FakeTrainer(cfg, env, restorable=False))
    assert run.execute() == 2
    assert log.last == ("ERROR", f"No trained agent in '{tmp_path}'; train one first (mode train); the arm was stopped "
                                 "and the environment was closed.")


def test_training_to_the_end_reports_the_result_and_resume_is_passed_on(tmp_path):
    log, trainers = Log(), []

    def trainer_factory(cfg, env):
        trainers.append(FakeTrainer(cfg, env, episodes=2))
        return trainers[-1]

    assert NodeRun(NodeParams(resume=True, overrides=tuple(sim_cfg(tmp_path))), log, trainer_factory=trainer_factory,
                   shutdown_hooks=[lambda: log.info("recording closed")]).execute() == 0
    assert trainers[0].resumed is True and trainers[0].closed
    assert log.records[-2] == ("INFO", "recording closed")
    assert log.last == ("INFO", f"Training finished after 2 episodes and 8 env steps with a final success rate of 25%; the "
                                f"checkpoint is in {tmp_path}/checkpoints, the recording was closed and the environment was closed.")


def test_a_trainer_that_cannot_start_closes_the_env(tmp_path):
    closed = []

    def env_factory(cfg):
        env = build_env(cfg)
        env.robot = SpyRobot(env.robot, closed)
        return env

    def trainer_factory(cfg, env):
        raise ConfigError("No policy at policy.checkpoint='x.msgpack'; pretrain one first.")

    log = Log()
    assert NodeRun(NodeParams(overrides=tuple(sim_cfg(tmp_path))), log, env_factory=env_factory,
                   trainer_factory=trainer_factory).execute() == 2
    assert log.last == ("ERROR", "No policy at policy.checkpoint='x.msgpack'; pretrain one first; the environment was closed.")
    assert [e for e, _ in closed] == ["close"]


def run_on_a_fake_widowx(tmp_path, trainer_factory, runs: list | None = None):
    """The node on the widowx_monkey config against the Interbotix fake (torque off on close: the
    default); checks that the arm ends torqued off in its sleep pose and returns (exit code, log, the
    arm's calls after the second reset, reads left out). `runs` receives the NodeRun before it executes."""
    from fakes import interbotix as fake_ix

    from dsrl_real.sim.tabletop import Tabletop

    overrides = ("cameras=[]", "policy.image_keys=[]", "robot.driver_timeout_s=5", f"train.out_dir={tmp_path}")
    log = Log()
    with fake_ix.install(Tabletop("monkey", seed=0)) as fake:
        run = NodeRun(NodeParams(config="widowx_monkey", overrides=overrides), log,
                      env_factory=lambda cfg: build_env(cfg, prompt=lambda text: ""), trainer_factory=trainer_factory)
        if runs is not None:
            runs.append(run)
        code = run.execute()
        names = [n for n in fake.names() if not n.startswith(("arm.get_", "gripper.get_"))]
        torque = fake.calls_named("core.robot_torque_enable")
        joints = np.array(fake.sim.joints)
    last_reset = len(names) - 1 - names[::-1].index("gripper.release")  # the second reset opened the gripper
    assert [c.kwargs for c in torque] == [{"cmd_type": "group", "name": "all", "enable": False}]
    np.testing.assert_allclose(joints, fake_ix.SLEEP_POSITIONS)
    return code, log, names[last_reset + 1:]


def test_ctrl_c_on_a_widowx_holds_the_arm_then_sleeps_and_torques_off(tmp_path):
    class CtrlCInSecondEpisode(FakeTrainer):
        def run(self, resume=False):
            self.total = 1
            super().run(resume)
            self.env.reset(seed=1)
            self.env.step(HOLD)
            raise KeyboardInterrupt

    code, log, calls = run_on_a_fake_widowx(tmp_path, CtrlCInSecondEpisode)
    assert code == 0
    assert calls == [
        "arm.set_ee_pose_components", "arm.set_joint_positions",  # the one step
        "arm.capture_joint_positions", "arm.set_joint_positions",  # stop: hold the measured joints
        "arm.go_to_sleep_pose", "core.robot_torque_enable", "robot_shutdown"]  # close: sleep, then torque off
    assert log.last == ("INFO", f"Interrupted (Ctrl-C or SIGTERM); the arm was stopped, a checkpoint was saved to "
                                f"{tmp_path}/checkpoints/episode_000001 and the environment was closed.")


def test_emergency_stop_on_a_widowx_holds_the_arm_then_sleeps_and_torques_off(tmp_path):
    runs = []

    class EstopInSecondEpisode(FakeTrainer):
        def run(self, resume=False):
            self.total = 1
            super().run(resume)
            self.env.reset(seed=1)
            self.env.step(HOLD)
            presser = threading.Thread(target=runs[0].emergency_stop, args=("a message on /dsrl_real/emergency_stop",))
            presser.start()  # the ~/emergency_stop subscription, on the executor's thread
            presser.join()
            self.env.step(HOLD)  # the loop's next robot call ends the run
            raise AssertionError("the step after an emergency stop went through")

    code, log, calls = run_on_a_fake_widowx(tmp_path, EstopInSecondEpisode, runs)
    assert code == 0
    assert calls == [
        "arm.set_ee_pose_components", "arm.set_joint_positions",  # the one step
        "arm.capture_joint_positions", "arm.set_joint_positions",  # the emergency stop: hold the measured joints
        "arm.capture_joint_positions", "arm.set_joint_positions",  # the node's own stop before it saves
        "arm.go_to_sleep_pose", "core.robot_torque_enable", "robot_shutdown"]  # close: sleep, then torque off
    assert log.last[0] == "INFO" and log.last[1].startswith("Emergency stop (a message on /dsrl_real/emergency_stop); the arm was stopped")


def test_the_checkpoint_after_a_stop_waits_for_the_trainers_learner():
    from dsrl_real.ros.node import wait_for_learner
    from dsrl_real.train.background_checkpoint import BackgroundCheckpoint
    from dsrl_real.train.learner import Learner

    release, written, order = threading.Event(), threading.Event(), []
    trainer = types.SimpleNamespace(learner=Learner(), checkpointing=BackgroundCheckpoint())
    trainer.learner.submit(lambda: (release.wait(30), order.append("learner done")))  # gradient steps, its own checkpoint
    # learner.mode=ray: the checkpoint still being written beside the episode
    trainer.checkpointing.start(lambda: (written.wait(30), order.append("checkpoint written")), [])
    waiter = threading.Thread(target=lambda: (wait_for_learner(trainer, 30), order.append("saved")))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive() and order == []  # still waiting for the learner
    release.set()
    waiter.join(0.3)
    assert waiter.is_alive() and order == ["learner done"]  # and for the checkpoint
    written.set()
    waiter.join(30)
    trainer.learner.stop()
    trainer.checkpointing.stop()
    assert order == ["learner done", "checkpoint written", "saved"]
    wait_for_learner(types.SimpleNamespace(), 30)  # a trainer without a learner: nothing to wait for


# ---- the rclpy part, through the fake -------------------------------------------------------------
def ros_args(**params) -> list[str]:
    args = ["--ros-args"]
    for name, value in params.items():
        args += ["-p", f"{name}:={value}"]
    return args


def test_node_declares_its_parameters_spins_and_shuts_ros_down(tmp_path):
    seen = {}

    def trainer_factory(cfg, env):
        seen["cfg"] = cfg
        seen["spinning"] = any(t.name == "ros-spin" and t.is_alive() for t in threading.enumerate())
        return FakeTrainer(cfg, env)

    with rclpy_fake.install() as fake:
        code = serve(ros_args(config="sim_monkey", mode="eval", overrides=f"['cameras=[]', 'policy.image_keys=[]', 'train.out_dir={tmp_path}']"),
                     trainer_factory=trainer_factory)
    assert code == 0
    assert seen["cfg"].train.out_dir == str(tmp_path) and seen["cfg"].cameras == [] and seen["spinning"]
    init = fake.calls_named("init")[0]
    assert init.kwargs["signal_handler_options"] == rclpy_fake.SignalHandlerOptions.NO  # Ctrl-C must not kill ROS first
    assert fake.calls_named("Node.__init__")[0].args == ("dsrl_real",)
    assert [(c.args[0], c.args[1]) for c in fake.calls_named("Node.declare_parameter")] == [
        ("config", ""), ("mode", "train"), ("reward_backend", ""), ("resume", False), ("use_sim", False), ("learner_address", ""),
        ("overrides", rclpy_fake.Parameter.Type.STRING_ARRAY)]
    estop = fake.calls_named("Node.create_subscription")[0]
    assert estop.args[0].__name__ == "Empty" and estop.args[1] == "~/emergency_stop"
    names = fake.names()
    assert names.index("SingleThreadedExecutor.shutdown") < names.index("Node.destroy_node") < names.index("try_shutdown")
    assert fake.shut_down and not any(t.name == "ros-spin" and t.is_alive() for t in threading.enumerate())
    assert fake.logs[-1] == ("dsrl_real", "INFO", "Evaluation finished: success rate 50% over 20 episodes (95% CI 10%-90%); "
                                                  "the environment was closed.")


def test_parameters_of_the_wrong_type_are_one_sentence():
    with rclpy_fake.install() as fake:
        assert serve(ros_args(resume="maybe")) == 2
    assert fake.logs[-1] == ("dsrl_real", "ERROR",
                             "A node parameter is invalid (Trying to set parameter 'resume' to 'maybe' of type 'STRING', "
                             "expecting type 'BOOL'); the node takes config (string), mode (string), reward_backend (string), "
                             "resume (bool), use_sim (bool), learner_address (string) and overrides (string array).")
    assert fake.shut_down


def test_an_emergency_stop_message_and_an_outside_rclpy_shutdown_end_the_run(tmp_path):
    for trigger in ("message", "shutdown"):
        trainers = []

        def trainer_factory(cfg, env):
            trainers.append(FakeTrainer(cfg, env))
            return trainers[-1]

        FakeTrainer.created.clear()
        with rclpy_fake.install() as fake:
            def press():
                assert FakeTrainer.created.wait(30) and trainers[0].stepping.wait(30)
                if trigger == "message":
                    publish = fake.peer_publisher("/dsrl_real/emergency_stop", rclpy_fake.message_class("std_msgs/msg/Empty"))
                    assert publish(rclpy_fake.message_class("std_msgs/msg/Empty")()) == 1
                else:
                    sys.modules["rclpy"].shutdown()

            presser = threading.Thread(target=press)
            presser.start()
            code = serve(ros_args(overrides=f"['cameras=[]', 'policy.image_keys=[]', 'train.out_dir={tmp_path / trigger}']"),
                         trainer_factory=trainer_factory)
            presser.join()
        reason = "a message on /dsrl_real/emergency_stop" if trigger == "message" else "the ROS 2 context was shut down"
        assert code == 0
        assert fake.logs[-1] == ("dsrl_real", "INFO", f"Emergency stop ({reason}); the arm was stopped, a checkpoint was "
                                                      f"saved to {trainers[0].saved[-1]} and the environment was closed.")


def test_a_stale_camera_ends_a_franka_run_with_the_arm_held(tmp_path):
    from fakes import realsense as fake_rs

    trainers = []

    def trainer_factory(cfg, env):
        trainers.append(FakeTrainer(cfg, env, steps=5))
        return trainers[-1]

    overrides = f"['robot.franka.move_speed=3.0', 'train.out_dir={tmp_path}', 'env.max_frame_age_s=0.2']"
    FakeTrainer.created.clear()
    with rclpy_fake.install() as fake, fake_rs.install({"42": np.zeros((480, 640, 3), np.uint8)}):
        arm = rclpy_fake.FakeFranka(fake).start()
        left, right = (rclpy_fake.FakeImageTopic(fake, f"/exterior_{side}/color/image_raw", np.zeros((360, 640, 3), np.uint8))
                       .start() for side in ("left", "right"))

        def unplug_left_camera():
            assert FakeTrainer.created.wait(30) and fake.wait_for(lambda: trainers[0].env_steps >= 8, 30)  # in the 2nd episode
            left.pause()

        unplug = threading.Thread(target=unplug_left_camera)
        unplug.start()
        code = serve(ros_args(config="franka_drawer", overrides=overrides),
                     env_factory=lambda cfg: build_env(cfg, prompt=lambda text: ""), trainer_factory=trainer_factory)
        unplug.join()
    assert code == 1
    level, message = fake.logs[-1][1:]
    assert level == "ERROR"
    assert re.fullmatch(
        r"Camera 'exterior_left' \(ROS topic /exterior_left/color/image_raw\) delivered a frame \d+\.\d\d s old, over "
        r"the 0\.2 s limit \(env\.max_frame_age_s\), so the arm was stopped and the episode ended; check the camera's "
        r"cable and driver, then resume the run; the arm was stopped, a checkpoint was saved to "
        + re.escape(str(trainers[0].saved[-1])) + r" and the environment was closed\.", message)
    assert trainers[0].env_steps > 0 and trainers[0].closed
    hold = arm.targets[-1].pose.position  # the last target holds the arm where it was measured
    np.testing.assert_allclose([hold.x, hold.y, hold.z], arm.pose[:3, 3], atol=0.011)


def test_franka_driver_not_running_ends_the_node_in_one_sentence_and_sends_nothing(tmp_path):
    with rclpy_fake.install() as fake:
        code = serve(ros_args(config="franka_drawer",
                              overrides=f"['robot.driver_timeout_s=0.2', 'train.out_dir={tmp_path}']"),
                     trainer_factory=lambda cfg, env: pytest.fail("no trainer without a robot"))
    assert code == 1
    assert fake.logs[-1] == ("dsrl_real", "ERROR", (
        "The Franka driver did not come up within 0.2 s (no controller subscribes to /cartesian_impedance_controller/"
        "equilibrium_pose, no pose on /franka_robot_state_broadcaster/current_pose, no gripper state on /fr3_gripper/"
        "joint_states, no gripper action server /fr3_gripper/homing, no gripper action server /fr3_gripper/move, no "
        "gripper action server /fr3_gripper/grasp); start it with `ros2 launch franka_bringup franka.launch.py "
        "robot_ip:=<fci-ip>` and a Cartesian controller taking geometry_msgs/PoseStamped targets on "
        "/cartesian_impedance_controller/equilibrium_pose (robot.franka.command_topic), then run again."))
    assert fake.calls_named("Publisher.publish") == [] and fake.calls_named("ActionClient.send_goal_async") == []
    assert fake.shut_down


# ---- a real process and real signals --------------------------------------------------------------
SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from fakes import rclpy_fake
from dsrl_real.ros.node import serve
from test_ros_node import FakeTrainer
import logging
logging.basicConfig(level=logging.INFO, format="%(message)s")
with rclpy_fake.install():  # a run too long to end before the signal does
    code = serve({args!r}, trainer_factory=lambda cfg, env: FakeTrainer(cfg, env, episodes=10**9))
sys.exit(code)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_the_node_process_ends_it_safely(tmp_path, sig):
    args = ros_args(overrides=f"['cameras=[]', 'policy.image_keys=[]', 'train.out_dir={tmp_path}']")
    script = SCRIPT.format(tests=str(Path(__file__).parent), args=args)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).parent.parent, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout.readline().strip() == "STEPPING"
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    last = stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"\[dsrl_real\] Interrupted \(Ctrl-C or SIGTERM\); the arm was stopped, a checkpoint was saved to "
                        + re.escape(str(tmp_path)) + r"/checkpoints/episode_\d{6} and the environment was closed\.", last)


class RecordingArm:
    def __init__(self):
        self.calls = []

    def command(self, target, duration_s):
        self.calls.append("command")
        return True

    def state(self):
        self.calls.append("state")

    def reset(self):
        self.calls.append("reset")

    def stop(self):
        self.calls.append("stop")


def test_an_interrupt_swallowed_on_its_way_still_stops_the_next_robot_call():
    arm = RecordingArm()
    guard = GuardedRobot(arm)
    guard.command("target", 0.2)
    try:
        node_module._interrupt(signal.SIGTERM, None)
    except KeyboardInterrupt:
        pass  # lost on its way, as when raised inside a finaliser
    try:
        for call in (lambda: guard.command("target", 0.2), guard.state, guard.reset):
            with pytest.raises(KeyboardInterrupt):
                call()
        guard.stop()  # the safe shutdown still stops the arm
        assert arm.calls == ["command", "stop"]
    finally:
        node_module._interrupt_requested.clear()


# ---- node names and parameters under launch_ros's arguments (issue 16) ----------------------------------------
REPO = Path(__file__).resolve().parent.parent


def launched_argv(tmp_path, **node_kwargs) -> list[str]:
    """`dsrl_real_node` with the arguments launch_ros would start it with: from widowx_monkey.launch.py as it is, or
    (node_kwargs) from a launch_ros Node(package='dsrl_real', executable='dsrl_real_node', **node_kwargs)."""
    from fakes import launch_fake

    prefix = launch_fake.install_like_colcon(REPO, tmp_path / "install" / "dsrl_real")
    with launch_fake.install(prefixes=[prefix]) as fake:
        if node_kwargs:
            from launch import LaunchDescription
            from launch_ros.actions import Node

            description = LaunchDescription([Node(package="dsrl_real", executable="dsrl_real_node", **node_kwargs)])
        else:
            description = fake.load(prefix / "share" / "dsrl_real" / "launch" / "widowx_monkey.launch.py").generate_launch_description()
        node = fake.run(description).node("dsrl_real")
    return ["dsrl_real_node", *node.command_line(tmp_path)]


@pytest.mark.parametrize("node_kwargs, names", [
    ({}, ["dsrl_real", "interbotix_robot_manipulation"]),  # the launch file as it is: no name=
    ({"name": "dsrl_real"}, ["dsrl_real", "dsrl_real"]),  # what it did before: -r __node:=dsrl_real renames both
    ({"arguments": ["--ros-args", "-r", "dsrl_real:__node:=learner"]}, ["interbotix_robot_manipulation", "learner"]),
], ids=["launch-file", "global-node-remap", "node-targeted-remap"])
def test_our_node_and_the_interbotix_node_in_one_process_under_launch_ros_arguments(tmp_path, node_kwargs, names):
    from fakes import interbotix as fake_ix

    from dsrl_real.config import RobotConfig
    from dsrl_real.robots import ros_runtime as ros
    from dsrl_real.robots.widowx import WidowXRobot
    from dsrl_real.sim.tabletop import Tabletop

    argv = launched_argv(tmp_path, **node_kwargs)
    with rclpy_fake.install() as fake, fake_ix.install(Tabletop("monkey", seed=0), ros=fake) as ix:
        runtime = ros.RosRuntime.start(ros.NODE_NAME, args=argv)  # what serve() does with the process's argv
        robot = WidowXRobot.connect(RobotConfig(kind="widowx", driver_timeout_s=5))  # creates the Interbotix node
        seen = sorted(node.get_name() for node in fake.nodes)
        assert ix.global_node in fake.nodes and ix.global_node.node_name == "interbotix_robot_manipulation"
        robot.close()  # upstream robot_shutdown(): destroys the Interbotix node and shuts rclpy down
        runtime.close()
    assert seen == names
    assert fake.calls_named("init")[0].kwargs["args"] == argv


def test_the_parameters_launch_ros_writes_reach_the_node(tmp_path):
    from dsrl_real.robots import ros_runtime as ros
    from dsrl_real.ros.node import declare_parameters

    argv = launched_argv(tmp_path, parameters=[{"config": "widowx_monkey", "resume": True,
                                                "overrides": ["run.seed=1", "train.out_dir=runs/a"]}])
    assert "--params-file" in argv  # a YAML file keyed '/**', the list dumped as !!python/tuple (launch_ros)
    with rclpy_fake.install():
        runtime = ros.RosRuntime.start(ros.NODE_NAME, args=argv)
        params = declare_parameters(runtime.node)
        runtime.close()
    assert (params.config, params.resume, params.overrides) == ("widowx_monkey", True, ("run.seed=1", "train.out_dir=runs/a"))


def test_the_rclpy_fake_names_nodes_as_rcl_does():
    with rclpy_fake.install():
        import rclpy
        from rclpy.node import Node

        rclpy.init(args=["x", "--ros-args", "-r", "__node:=all", "-r", "b:__node:=bee", "-r", "all:__ns:=/moved"])
        assert (Node("a").get_name(), Node("a").get_namespace()) == ("all", "/moved")  # first fitting rule wins
        assert Node("b").get_name() == "all"  # `__node:=all` comes first and fits every node
        assert Node("c", use_global_arguments=False).get_name() == "c"
        assert Node("d", cli_args=["--ros-args", "-r", "__node:=local"]).get_name() == "local"  # local rules first
        assert Node("e", cli_args=["-r", "__node:=ignored"]).get_name() == "all"  # not after --ros-args: not a rule
        with pytest.raises(NotImplementedError, match="only __node and __ns"):
            Node("f", cli_args=["--ros-args", "-r", "chatter:=talk"])
        rclpy.shutdown()
