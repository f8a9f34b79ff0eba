"""`dsrl_real_node`: DSRL fine-tuning, evaluation or a human-oracle run as a ROS 2 node named "dsrl_real".

    ros2 run dsrl_real dsrl_real_node --ros-args -p config:=widowx_monkey -p mode:=train
    (usually through the launch files, which also start the robot's driver)

Parameters: `config` (a name in configs/ or a YAML path; "" = the embedded simulated default),
`mode` (train | eval | human_oracle), `reward_backend` ("" = the config's), `resume`, `use_sim`,
`learner_address` ("" = the config's learner; "local" = the learner as a Ray actor on a local Ray;
else the Ray cluster to run it on, e.g. "auto" or "ray://gpu-box:10001": learner.mode=ray) and
`overrides` (dotted config overrides, e.g. ["train.env_steps=3000"]). `human_oracle` is training
with the human's reward (reward.backend=human), the baseline the papers compare against. `use_sim`
runs the same task on the in-process simulated tabletop (robot.kind=sim, simulated cameras of the
same names and sizes), so no driver or hardware is needed.

The node's executor spins in a background thread (image topics, the Franka's state and gripper,
`~/emergency_stop`) while the loop runs in the main thread. Ctrl-C, SIGTERM (what `ros2 launch`
sends after SIGINT), a std_msgs/Empty on `/dsrl_real/emergency_stop` and an rclpy shutdown from
outside all end the same way: the arm is stopped, a checkpoint is saved, the recording and the
environment are closed (the arm goes to its safe pose), ROS shuts down and one sentence says what
happened. Exit code 0 (also after a deliberate stop), 1 after a failure, 2 for a configuration error.

`NodeRun` holds all of this without rclpy, so it is tested with a parameter dict and factories.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..config import CameraConfig, Config, ConfigError, load_config
from ..config.observations import observation_label
from ..envs.make import build_env
from ..envs.safety import EmergencyStop
from ..errors import UserError
from ..robots import ros_runtime as ros
from ..robots.base import PoseTarget, RobotState
from ..sim.render import VIEWS
from ..tasks import SIM_TASKS
from ..train.trainer import DSRLTrainer

MODES = ("train", "eval", "human_oracle")
PARAMETERS: dict[str, Any] = {"config": "", "mode": "train", "reward_backend": "", "resume": False, "use_sim": False,
                              "learner_address": "", "overrides": ()}
ESTOP_TOPIC = "~/emergency_stop"
LEARNER_JOIN_S = 120.0  # how long a stop's checkpoint waits for the trainer's learner to finish its cycle


@dataclass(frozen=True)
class NodeParams:
    config: str = ""
    mode: str = "train"
    reward_backend: str = ""
    resume: bool = False
    use_sim: bool = False
    learner_address: str = ""
    overrides: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "NodeParams":
        unknown = sorted(set(values) - set(PARAMETERS))
        if unknown:
            raise ConfigError(f"Unknown node parameter(s) {', '.join(unknown)}; the node takes: {', '.join(PARAMETERS)}.")
        params = cls(**{k: tuple(v) if k == "overrides" else v for k, v in values.items() if v is not None})
        if params.mode not in MODES:
            raise ConfigError(f"Node parameter mode is '{params.mode}'; choose one of: {', '.join(MODES)}.")
        return params


def node_config(params: NodeParams) -> Config:
    """The config the parameters describe: file, overrides, then the reward backend the mode or parameter asks for."""
    overrides = list(params.overrides)
    backend = params.reward_backend
    if params.mode == "human_oracle":
        if backend not in ("", "human"):
            raise ConfigError(f"mode human_oracle trains with the human reward, but reward_backend is '{backend}'; "
                              "leave reward_backend empty or use mode train.")
        backend = "human"
    if backend:
        overrides.append(f"reward.backend={backend}")
    if params.learner_address:  # the learner as a Ray actor: on a local Ray, or on the cluster at that address
        address = "" if params.learner_address == "local" else params.learner_address
        overrides += ["learner.mode=ray", f"learner.address={address}"]
    cfg = load_config(params.config or None, overrides)
    if params.use_sim:
        simulate(cfg)
    return cfg


def simulate(cfg: Config) -> None:
    """use_sim: the config's task on the simulated tabletop, with simulated cameras of the same names and sizes."""
    if cfg.task.name not in SIM_TASKS:
        raise ConfigError(f"use_sim runs the simulated tabletop, which has the tasks {', '.join(SIM_TASKS)}, but this "
                          f"config's task is '{cfg.task.name}'; set use_sim false or pick a config for one of those tasks.")
    cfg.robot.kind = "sim"
    cfg.cameras = [CameraConfig(name=c.name, kind="sim", width=c.width, height=c.height,
                                view=c.view if c.kind == "sim" else (c.name if c.name in VIEWS else "third_person"))
                   for c in cfg.cameras]


# Set by the node's Ctrl-C / SIGTERM handler. Its KeyboardInterrupt can be swallowed (raised inside a
# finaliser, say), so GuardedRobot raises it again on the next motion or state call: after an
# interrupt no further command reaches the arm.
_interrupt_requested = threading.Event()


class GuardedRobot:
    """The env's robot behind a latch: `halt()` (from any thread) stops the arm at once, and every
    later motion or state call raises EmergencyStop in the loop's thread, which ends the run. After
    a Ctrl-C or SIGTERM to the node every such call raises KeyboardInterrupt."""

    def __init__(self, robot):
        self.robot = robot
        self._lock = threading.Lock()  # a halt never interleaves with a command being sent
        self.halted: str | None = None

    def halt(self, reason: str) -> None:
        with self._lock:
            first = self.halted is None
            self.halted = self.halted or reason
        if first:
            self.robot.stop()

    def _check(self) -> None:
        if _interrupt_requested.is_set():
            raise KeyboardInterrupt
        if self.halted is not None:
            raise EmergencyStop(self.halted)

    def reset(self) -> None:
        self._move(self.robot.reset)

    def home(self) -> None:
        self._move(self.robot.home)

    def _move(self, move: Callable[[], None]) -> None:
        """A long move; a halt meanwhile stops the arm itself, and the move's own error becomes the stop's."""
        self._check()
        try:
            move()
        except Exception:
            self._check()
            raise
        self._check()

    def state(self) -> RobotState:
        self._check()
        return self.robot.state()

    def command(self, target: PoseTarget, duration_s: float) -> bool:
        with self._lock:
            self._check()
            return self.robot.command(target, duration_s)

    def stop(self) -> None:
        self.robot.stop()

    def close(self) -> None:
        self.robot.close()

    def __getattr__(self, name: str):  # counters and the like of the wrapped robot (refusals, ...)
        if name == "robot":
            raise AttributeError(name)
        return getattr(self.robot, name)


def _default_env_factory(cfg: Config):
    return build_env(cfg)


def _default_trainer_factory(cfg: Config, env):
    return DSRLTrainer(cfg, env=env)


def _and_join(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


@contextlib.contextmanager
def _signals_to(handler):
    """Ctrl-C and SIGTERM go to `handler` inside the block, the previous handlers after it. Only the
    main thread can set handlers; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def _shielded(log):
    """A second Ctrl-C (or SIGTERM) must not cut the safe shutdown short: say so and carry on."""

    def wait(signum, frame):
        log.warning("Already shutting down safely (arm stop, checkpoint, close); please wait.")

    with _signals_to(wait):
        yield


def wait_for_learner(trainer, timeout_s: float = LEARNER_JOIN_S) -> None:
    """Let the trainer's learner (train/learner.py: gradient steps, checkpoint) finish its cycle, and in
    learner.mode=ray the checkpoint written beside the episode (train/background_checkpoint.py), before
    saving another checkpoint, within `timeout_s` in all; a trainer without them has nothing to wait for."""
    deadline = time.monotonic() + timeout_s
    for worker in (getattr(trainer, "learner", None), getattr(trainer, "checkpointing", None)):
        if worker is not None:
            worker.join(max(0.0, deadline - time.monotonic()))


class NodeRun:
    """One run of the node: build the config and the environment, run the mode, always end safely."""

    def __init__(self, params: NodeParams, log, *, env_factory: Callable[[Config], Any] = _default_env_factory,
                 trainer_factory: Callable[[Config, Any], Any] = _default_trainer_factory,
                 shutdown_hooks: Sequence[Callable[[], None]] = ()):
        self.params, self.log = params, log
        self.env_factory, self.trainer_factory = env_factory, trainer_factory
        self.shutdown_hooks = list(shutdown_hooks)  # e.g. close a recording; run before the env closes
        self.trainer = None
        self.guard: GuardedRobot | None = None
        self._early_stop: str | None = None
        self._finishing = False  # from then on the run ends anyway (and closing a WidowX shuts ROS down)
        self._lock = threading.Lock()

    def emergency_stop(self, reason: str) -> None:
        """From any thread (a ROS callback): stop the arm now; the run ends at its next robot call."""
        if self._finishing:
            return
        self.log.warning(f"Emergency stop: {reason}.")
        with self._lock:
            guard = self.guard
            if guard is None:
                self._early_stop = reason
                return
        try:
            guard.halt(reason)
        except Exception as err:  # noqa: BLE001 - a callback must not kill the executor; the loop still ends
            self.log.error(f"Stopping the arm failed ({err}); the run ends at its next robot call.")

    def execute(self) -> int:
        try:
            cfg = node_config(self.params)
        except ConfigError as err:
            self.log.error(str(err))
            return 2
        mode = self.params.mode
        self.log.info(f"Starting {mode} on task '{cfg.task.name}' with robot.kind={cfg.robot.kind} and "
                      f"reward.backend={cfg.reward.backend}, observing {observation_label(cfg)}; output in {cfg.train.out_dir}.")
        try:
            env = self.env_factory(cfg)  # connects to the robot and the cameras (bounded waits)
        except KeyboardInterrupt:
            self.log.info("Interrupted while connecting to the robot; no command was sent to the arm.")
            return 0
        except UserError as err:
            self.log.error(str(err))
            return 2
        except Exception as err:  # noqa: BLE001 - e.g. the driver is not running: nothing was sent to the arm
            self.log.error(str(err))
            return 1
        with self._lock:
            self.guard = env.robot = GuardedRobot(env.robot)
            early = self._early_stop
        if early:
            self.guard.halt(early)
        try:
            self.trainer = self.trainer_factory(cfg, env)
        except BaseException as err:
            with _shielded(self.log):
                env.close()
            if isinstance(err, KeyboardInterrupt):
                self.log.info("Interrupted while setting up the learner; the environment was closed.")
                return 0
            self.log.error(f"{str(err).rstrip('.')}; the environment was closed.")
            return 2 if isinstance(err, UserError) else 1
        try:
            summary = self._run(cfg)
        except KeyboardInterrupt:
            return self._finish("Interrupted (Ctrl-C or SIGTERM)", 0, interrupted=True)
        except Exception as err:  # noqa: BLE001 - whatever ended the run, it ends safely and in one sentence
            if isinstance(err, EmergencyStop):
                return self._finish(f"Emergency stop ({err})", 0, interrupted=True)
            return self._finish(str(err).rstrip("."), 2 if isinstance(err, UserError) else 1, interrupted=True)
        return self._finish(summary, 0, interrupted=False)

    def _run(self, cfg: Config) -> str:
        trainer = self.trainer
        if self.params.mode == "eval":
            if not trainer.restore():
                raise ConfigError(f"No trained agent in '{cfg.train.out_dir}'; train one first (mode train).")
            result = trainer.evaluate(cfg.train.eval_episodes)
            return (f"Evaluation finished: success rate {result['success_rate']:.0%} over {cfg.train.eval_episodes} "
                    f"episodes (95% CI {result['ci95'][0]:.0%}-{result['ci95'][1]:.0%})")
        result = trainer.run(resume=self.params.resume)
        return (f"{'Human-oracle run' if self.params.mode == 'human_oracle' else 'Training'} finished after "
                f"{result['episodes']} episodes and {result['env_steps']} env steps with a final success rate of "
                f"{result['final_success_rate']:.0%}")

    def _finish(self, headline: str, code: int, interrupted: bool) -> int:
        """Stop the arm, save a checkpoint, close recording and env; log one sentence; return the exit code."""
        done: list[str] = []
        trainer = self.trainer
        self._finishing = True
        with _shielded(self.log):
            if interrupted:
                try:
                    self.guard.stop()
                    done.append("the arm was stopped")
                except Exception as err:  # noqa: BLE001 - report it and go on with the rest
                    done.append(f"stopping the arm failed ({err})")
                if self.params.mode != "eval":
                    done.append(self._save_checkpoint(trainer))
            elif self.params.mode != "eval":
                done.append(f"the checkpoint is in {trainer.out_dir / 'checkpoints'}")
            hooks = list(self.shutdown_hooks)
            recorder = getattr(trainer, "recorder", None)
            if recorder is not None and hasattr(recorder, "close"):
                hooks.append(recorder.close)
            for hook in hooks:
                try:
                    hook()
                except Exception as err:  # noqa: BLE001
                    done.append(f"closing the recording failed ({err})")
            if hooks and not any(d.startswith("closing the recording") for d in done):
                done.append("the recording was closed")
            try:
                if hasattr(trainer, "close"):
                    trainer.close()  # the reward side first, then the env
                else:
                    trainer.env.close()
                done.append("the environment was closed")
            except Exception as err:  # noqa: BLE001
                done.append(f"closing the environment failed ({err})")
        sentence = f"{headline}; {_and_join(done)}."
        (self.log.info if code == 0 else self.log.error)(sentence)
        return code

    def _save_checkpoint(self, trainer) -> str:
        wait_for_learner(trainer)
        if not trainer.episodes:
            return "no episode had finished, so there was no checkpoint to save"
        try:
            return f"a checkpoint was saved to {trainer.save_checkpoint()}"
        except Exception as err:  # noqa: BLE001
            return f"saving a checkpoint failed ({err})"


# ---- the rclpy part ----------------------------------------------------------------------------
def declare_parameters(node) -> NodeParams:
    """Declare the node's parameters (typed by their defaults) and read them."""
    from rclpy.parameter import Parameter

    try:
        for name, default in PARAMETERS.items():
            node.declare_parameter(name, Parameter.Type.STRING_ARRAY if name == "overrides" else default)
        values = {name: node.get_parameter(name).value for name in PARAMETERS if name != "overrides"}
        values["overrides"] = node.get_parameter_or(
            "overrides", Parameter("overrides", Parameter.Type.STRING_ARRAY, [])).value
    except Exception as err:  # noqa: BLE001 - rclpy's parameter exceptions differ between releases
        raise ConfigError(f"A node parameter is invalid ({err}); the node takes config (string), mode (string), "
                          "reward_backend (string), resume (bool), use_sim (bool), learner_address (string) and overrides "
                          "(string array).") from err
    return NodeParams.from_dict(values)


def _interrupt(signum, frame):
    _interrupt_requested.set()
    raise KeyboardInterrupt


def main(args: list[str] | None = None) -> int:
    """Console script `dsrl_real_node`."""
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] [%(name)s]: %(message)s")
    return serve(args)


def serve(args: list[str] | None = None, **factories) -> int:
    """The node's life: rclpy up, parameters, `NodeRun` (factories as there), rclpy down. Returns the exit code."""
    try:
        ros.import_rclpy()
        (Empty,) = ros.import_messages("std_msgs.msg", "Empty")
    except ImportError as err:
        print(f"dsrl_real_node: {err}", file=sys.stderr)
        return 1
    runtime = ros.RosRuntime.start(ros.NODE_NAME, args=args)
    ros.set_runtime(runtime)
    node = runtime.node
    log = node.get_logger()
    _interrupt_requested.clear()
    try:
        with _signals_to(_interrupt):
            try:
                params = declare_parameters(node)
            except ConfigError as err:
                log.error(str(err))
                return 2
            run = NodeRun(params, log, **factories)
            runtime.on_external_shutdown = run.emergency_stop
            node.create_subscription(Empty, ESTOP_TOPIC,
                                     lambda msg: run.emergency_stop(f"a message on /{ros.NODE_NAME}/emergency_stop"), 10)
            return run.execute()
    finally:
        ros.set_runtime(None)
        runtime.close()


if __name__ == "__main__":
    sys.exit(main())
