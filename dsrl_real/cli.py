"""The `dsrl-real` command.

Exit codes: 0 done; 2 a problem the user can fix (a `UserError`, a bad argument, a file that cannot be
read or written, a missing optional dependency), told in one sentence; 3 an emergency stop; 130 Ctrl-C;
1 a stale camera frame stopped the arm, or a bug (its traceback is saved to a file). `--debug` shows the
traceback of any error.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import inspect
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from .analysis.audit import audit_table, confusion_tables, main_json, verify_lines, write_audit
from .analysis.report import actors_table, agreement_lines, report_table, robot_table, verify_report_lines, write_report
from .analysis.score import score_video
from .bench import BENCHMARKS
from .bench.learning import TASKS
from .bench.learning_runs import ALGORITHMS
from .bench.reward_trust import CONDITIONS
from .config import ConfigError, check_config, load_config, to_yaml
from .config.observations import OBSERVATIONS, observation_label, observation_overrides
from .envs.make import build_env, safety_limits
from .envs.robot_env import StaleFrameError
from .envs.safety import EmergencyStop, action_bounds
from .errors import UserError
from .machine import describe, machine_info
from .policies import load_base_policy
from .policies.pipeline import pretrain_from_demos
from .policies.pretrain import POLICY_FILE, Pretrainer
from .recording import load_episodes
from .recording.export import export_run
from .rollout import ChunkPlayback, gaussian_noise, random_policy, run_episode, scripted_expert, success_summary
from .rollout.demos import collect_demos
from .storage import write_atomic
from .train.trainer import DSRLTrainer

DEMO_SUMMARY = "summary.json"  # in the demo's run folder: what it printed last, with its wall time and machine


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", default=None, help="config name in configs/ or a YAML path (default: embedded sim)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. robot.control_hz=10 task.name=drawer")


def _load(args):
    """The config the command line names; `--obs` selects an observation mode beneath the dotted overrides."""
    return load_config(args.config, [*(observation_overrides(args.obs) if args.obs else []), *args.overrides])


def _cmd_rollout(args) -> int:
    cfg = _load(args)
    env = build_env(cfg)
    if args.policy == "expert":
        act = scripted_expert(env, cfg.run.expert_noise, cfg.run.seed)
    elif args.policy == "base":
        policy = load_base_policy(cfg.policy)
        act = ChunkPlayback(policy, gaussian_noise(policy.noise_shape, cfg.run.seed))
    else:
        act = random_policy(env, cfg.run.seed)
    console = Console(stderr=True)
    observations = observation_label(cfg, policy if args.policy == "base" else None)
    table = Table(title=f"{args.policy} on '{env.task.instruction}' ({cfg.robot.kind}; observations: {observations})")
    for column in ("episode", "seed", "success", "steps", "progress", "safety"):
        table.add_column(column, justify="right")
    results = []
    try:
        for i in range(cfg.run.episodes):
            result = run_episode(env, act, seed=cfg.run.seed + i)
            results.append(result)
            table.add_row(str(i), str(result.seed), "yes" if result.success else "no", str(result.steps),
                          f"{result.final_progress:.2f}", str(result.safety_interventions))
    finally:
        env.close()
    console.print(table)
    summary = success_summary(sum(r.success for r in results), len(results))
    print(json.dumps({
        "policy": args.policy, "task": env.task.name, "observations": observations, "episodes": len(results),
        "success_rate": summary["success_rate"], "success_rate_ci95": summary["ci95"],
        "mean_steps": sum(r.steps for r in results) / max(len(results), 1),
    }))
    return 0


def _progress():
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True))


def _cmd_collect_demos(args) -> int:
    cfg = _load(args)
    with _progress() as progress:
        paths = collect_demos(cfg, progress)
    print(json.dumps({"episodes": len(paths), "out_dir": cfg.demos.out_dir}))
    return 0


def _cmd_pretrain(args) -> int:
    cfg = _load(args)
    low, high = action_bounds(safety_limits(cfg))  # the env's action box, from the config: nothing connects to the robot
    try:
        episodes = load_episodes(cfg.pretrain.demos)
    except FileNotFoundError as err:
        raise ConfigError(str(err)) from err
    trainer = Pretrainer(cfg.policy, cfg.pretrain, episodes, low, high)
    out_dir = Path(cfg.pretrain.out_dir)
    if args.resume and trainer.restore(out_dir):
        print(f"resuming from step {int(trainer.state['step'])}", file=sys.stderr)
    elif not args.resume and (out_dir / POLICY_FILE).exists():
        raise ConfigError(f"'{out_dir}' already holds a policy; pass --resume to continue it or choose another pretrain.out_dir.")
    with _progress() as progress:
        trainer.run(out_dir, progress)
    last = trainer.history[-1] if trainer.history else {}
    print(json.dumps({"policy": str(out_dir / POLICY_FILE), "steps": int(trainer.state["step"]), **last}))
    return 0


def _cmd_demo(args) -> int:
    """The whole loop in simulation: scripted demos, imitation pretraining, base-policy evaluation,
    DSRL fine-tuning from that policy, and the fine-tuned agent's evaluation. Its results, wall time and
    machine are printed and kept in the run folder's summary.json, so a quoted number says where it came from."""
    began, date = time.perf_counter(), time.strftime("%Y-%m-%dT%H:%M:%S%z")
    cfg = _load(args)
    work_dir = Path(cfg.run.out_dir) / time.strftime("demo-%Y%m%d-%H%M%S")
    with _progress() as progress:
        policy, _, seconds = pretrain_from_demos(cfg, work_dir, progress)
    # base and fine-tuned success on run.eval_episodes scenes; the learning curve's points in between on train.eval_episodes
    train_cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, out_dir=str(work_dir / "dsrl"),
                                                                   final_eval_episodes=cfg.run.eval_episodes))
    start = time.perf_counter()
    dsrl = DSRLTrainer(train_cfg, policy=policy)
    try:
        with _progress() as progress:
            tuned = dsrl.run(progress=progress)
    finally:
        dsrl.env.close()
    wall, machine = time.perf_counter() - began, machine_info()
    # The base policy's success is the trainer's step-0 evaluation: w ~ N(0, I) on the evaluation scenes
    # (policies.pipeline.base_success draws the same), where the learning curve starts.
    print(f"observations: {tuned['observations']}", file=sys.stderr)
    print(f"base policy: {tuned['base_success_rate']:.0%} success over {tuned['base_episodes']} episodes", file=sys.stderr)
    summary = {
        "task": cfg.task.name, "observations": tuned["observations"], "run_dir": str(work_dir),
        "policy": str(work_dir / "policy" / "policy.msgpack"),
        "episodes": tuned["base_episodes"], "base_success_rate": tuned["base_success_rate"], "base_success_ci95": tuned["base_ci95"],
        "algorithm": tuned["label"], "env_steps": tuned["env_steps"],
        "fine_tuned_success_rate": tuned["final_success_rate"], "fine_tuned_success_ci95": tuned["final_ci95"],
        "collect_and_pretrain_s": round(seconds, 1), "fine_tune_s": round(time.perf_counter() - start, 1),
        "wall_time_s": round(wall, 1), "date": date, "machine": machine,
    }
    write_atomic(work_dir / DEMO_SUMMARY, (json.dumps(summary, indent=2) + "\n").encode())
    print(f"fine-tuned ({tuned['label']}): {tuned['final_success_rate']:.0%} success; the demo took {wall / 60:.1f} min "
          f"on {describe(machine)}", file=sys.stderr)
    print(json.dumps(summary))
    return 0


def _cmd_train(args) -> int:
    cfg = _load(args)
    trainer = DSRLTrainer(cfg)
    try:
        with _progress() as progress:
            result = trainer.run(resume=args.resume, progress=progress)
    finally:
        trainer.close()
    print(json.dumps({**result, "out_dir": cfg.train.out_dir}))
    return 0


def _cmd_eval(args) -> int:
    cfg = _load(args)
    trainer = DSRLTrainer(cfg)
    try:
        if not trainer.restore():
            raise ConfigError(f"No trained agent in '{cfg.train.out_dir}'; train one with `dsrl-real train` first.")
        result = trainer.evaluate(args.episodes or cfg.train.eval_episodes)
    finally:
        trainer.close()
    print(json.dumps({"label": trainer.label, "observations": trainer.observations, "env_steps": trainer.env_steps, **result}))
    return 0


def _cmd_config(args) -> int:
    print(to_yaml(_load(args)), end="")
    return 0


def _cmd_score(args) -> int:
    cfg = load_config(args.config, args.overrides)
    cfg = check_config(dataclasses.replace(cfg, reward=dataclasses.replace(
        cfg.reward, backend=args.backend, model=args.model or cfg.reward.model, server_url=args.server_url or cfg.reward.server_url,
        num_frames=args.num_frames or cfg.reward.num_frames, camera=args.camera or cfg.reward.camera)))
    result = score_video(cfg, args.video, args.task)
    print(json.dumps(result, default=lambda x: x.tolist() if hasattr(x, "tolist") else str(x)))
    return 0


# The bench flags, each passed to the benchmarks whose function takes a parameter of that name.
BENCH_FLAGS = {"--obs": "obs", "--task": "task", "--seeds": "seeds", "--algorithms": "algorithms", "--conditions": "conditions",
               "--jobs": "jobs", "--out": "out", "--merge": "merge"}
MERGE_FLAGS = ("--seeds", "--algorithms", "--conditions", "--out")  # --merge runs nothing: what it takes besides the folders


def _cmd_bench(args) -> int:
    bench = BENCHMARKS[args.name]
    parameters = inspect.signature(bench).parameters
    if args.overrides and "overrides" not in parameters:
        raise UserError(f"dsrl-real bench {args.name} takes no overrides; run it without '{args.overrides[0]}'.")
    given = {flag: getattr(args, name) for flag, name in BENCH_FLAGS.items() if getattr(args, name) is not None}
    for flag in given:
        if BENCH_FLAGS[flag] not in parameters:
            raise UserError(f"dsrl-real bench {args.name} takes no {flag}; run it without {flag}.")
        if "--merge" in given and flag not in (*MERGE_FLAGS, "--merge"):
            raise UserError(f"--merge reports on folders already run and takes no {flag}; run it without {flag}.")
    kwargs = {BENCH_FLAGS[flag]: value for flag, value in given.items()}
    print(json.dumps(bench(**kwargs, **({"overrides": args.overrides} if args.overrides else {})), indent=2))
    return 0


def _table_console():
    """Tables go to stderr; when that is not a terminal (a log file, a test) they get 160 columns, not 80."""
    console = Console(stderr=True)
    if not console.is_terminal:
        console.width = 160
    return console


def _cmd_audit(args) -> int:
    result, json_path, png_path = write_audit(args.run_dir, reference=args.reference, out_dir=args.out, resamples=args.resamples)
    console = _table_console()
    console.print(audit_table(result))
    for table in confusion_tables(result):
        console.print(table)
    for line in verify_lines(result):
        console.print(line)
    print(main_json(result, json_path, png_path))
    return 0


def _cmd_export(args) -> int:
    with _progress() as progress:
        summary = export_run(args.source, args.target, progress)
    print(json.dumps(summary))
    return 0


def _cmd_report(args) -> int:
    summary, json_path, png_path = write_report(args.run_dir, out_dir=args.out)
    console = _table_console()
    console.print(report_table(summary))
    if summary["robot"] is not None:
        console.print(robot_table(summary))
        if actors_table(summary) is not None:
            console.print(actors_table(summary))
    for line in agreement_lines(summary) + verify_report_lines(summary):
        console.print(line)
    print(json.dumps({"json": str(json_path), "png": str(png_path), "observations": summary["observations"],
                      "robot_time_s": summary["robot_time_s"],
                      "episodes": summary["total"]["episodes"], "success_rate": summary["total"]["success_rate"],
                      "robot": summary["robot"], "verify": summary["verify"]}))
    return 0


def _count(low: int, high: int, meaning: str):
    """An argparse type: an integer in [low, high], or one sentence saying so."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is not {meaning}; give an integer from {low} to {high}")
        return value
    return parse


def _seeds(text: str) -> list[int]:
    """An argparse type: comma-separated seeds, e.g. 0,1,2, or one sentence saying what is wrong."""
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isdigit() and int(p) <= 1_000_000_000 for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of seeds; give integers from 0 to 1000000000 "
                                         "separated by commas, e.g. 0,1,2")
    seeds = [int(p) for p in parts]
    twice = next((s for i, s in enumerate(seeds) if s in seeds[:i]), None)
    if twice is not None:
        raise argparse.ArgumentTypeError(f"{text!r} names seed {twice} twice; give each seed once")
    return seeds


def _names(known):
    """An argparse type: comma-separated names out of `known`, or one sentence naming the unknown one."""
    def parse(text: str) -> list[str]:
        names = [p.strip() for p in text.split(",")]
        unknown = next((n for n in names if n not in known), None)
        if unknown is not None:
            raise argparse.ArgumentTypeError(f"{unknown!r} is not one of {', '.join(known)}; give some of them separated by commas")
        return list(dict.fromkeys(names))
    return parse


DEBUG = "--debug", {"action": "store_true", "help": "show the full traceback of any error"}


def _command(sub, name: str, func, help: str, *flags: tuple[tuple, dict], config: bool = True) -> None:
    parser = sub.add_parser(name, help=help)
    # Also accepted after the command; SUPPRESS keeps a --debug given before it.
    parser.add_argument(DEBUG[0], action="store_true", default=argparse.SUPPRESS, help=DEBUG[1]["help"])
    for args, kwargs in flags:
        parser.add_argument(*args, **kwargs)
    if config:
        _add_config_args(parser)
    parser.set_defaults(func=func)


RESUME = "--resume", {"action": "store_true", "help": "continue from the last checkpoint in the output folder"}
OBS = ("--obs",), {"choices": tuple(OBSERVATIONS), "default": None,
                   "help": "pixels: camera frames + proprio, what a robot has (the default configs' own); state: adds object_state, "
                           "the simulator's exact object positions (privileged, simulation only)"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dsrl-real", description="Real-robot DSRL with learned rewards.")
    parser.add_argument(DEBUG[0], **DEBUG[1])
    sub = parser.add_subparsers(dest="command", required=True)
    _command(sub, "rollout", _cmd_rollout, "run episodes of the scripted expert, the base policy or a random policy", OBS,
             (("--policy",), {"choices": ("expert", "base", "random"), "default": "expert",
                              "help": "base: the policy at policy.checkpoint (or policy.external), noise ~ N(0, I)"}))
    _command(sub, "collect-demos", _cmd_collect_demos, "record scripted-expert episodes in simulation (demos.*)", OBS)
    _command(sub, "pretrain", _cmd_pretrain, "pretrain the diffusion base policy by imitation (pretrain.*, policy.*)",
             ((RESUME[0],), RESUME[1]), OBS)
    _command(sub, "demo", _cmd_demo, "simulated end to end: demos, pretraining, base-policy evaluation, DSRL fine-tuning, evaluation",
             OBS)
    _command(sub, "train", _cmd_train, "fine-tune the base policy with DSRL (train.*, agent.*, reward.*)", ((RESUME[0],), RESUME[1]),
             OBS)
    _command(sub, "eval", _cmd_eval, "evaluate a trained agent with its mean noise", OBS,
             (("--episodes",), {"type": _count(0, 1_000_000, "a number of trials"), "default": 0,
                                "help": "trials (default: train.eval_episodes)"}))
    _command(sub, "config", _cmd_config, "print the resolved configuration", OBS)
    _command(sub, "score", _cmd_score, "score a recorded video with a reward backend; prints reward, success, score as JSON",
             (("--backend",), {"required": True, "help": "roboreward | robometer | human"}),
             (("--video",), {"required": True, "help": "the episode's video file (mp4)"}),
             (("--task",), {"required": True, "help": "the instruction the robot was given"}),
             (("--model",), {"default": "", "help": "checkpoint folder or hub id (with --server-url: the served model's name)"}),
             (("--server-url",), {"default": "", "help": "an OpenAI-compatible server's base URL (default: run the model here)"}),
             (("--num-frames",), {"type": _count(0, 256, "a number of frames"), "default": 0,
                                  "help": "frames per query (default: the backend's own)"}),
             (("--camera",), {"default": "", "help": "a name for the video's camera (default: video)"}))
    run_dir = ("run_dir",), {"help": "a run's output folder holding recorded episodes (meta/) and/or metrics.jsonl"}
    out = ("--out",), {"default": None, "help": "where to write the JSON and PNG (default: RUN_DIR)"}
    _command(sub, "audit", _cmd_audit, "agreement of each reward backend with the human labels of a recorded run",
             run_dir, out, (("--reference",), {"default": "human", "help": "the labels to audit against (default: human)"}),
             (("--resamples",), {"type": _count(1, 1_000_000, "a number of resamples"), "default": 2000,
                                 "help": "bootstrap resamples for the MAE, tau and pairwise intervals"}),
             config=False)
    _command(sub, "report", _cmd_report, "summary of a run: learning curve, success over time, agreement, robot time, safety",
             run_dir, out, config=False)
    _command(sub, "export", _cmd_export, "convert a run recorded in the older LeRobot v2.1 layout into a LeRobot v3.0 dataset",
             (("source",), {"help": "the old run's folder (meta/episodes.jsonl); it is only read"}),
             (("target",), {"help": "a new or empty folder for the LeRobot v3.0 dataset"}), config=False)
    _command(sub, "bench", _cmd_bench, "benchmarks that print JSON", (("name",), {"choices": tuple(BENCHMARKS)}),
             (("overrides",), {"nargs": "*", "help": "dotted overrides, for the benches that run the trainer "
                                                   "(robot-idle, fleet, learning, reward-trust)"}),
             OBS,
             (("--task",), {"choices": TASKS, "help": "learning: the simulated task (default monkey)"}),
             (("--seeds",), {"type": _seeds, "help": "learning, reward-trust: comma-separated seeds, each a run per algorithm "
                                                     "or condition (default 0,1,2)"}),
             (("--algorithms",), {"type": _names(tuple(ALGORITHMS)),
                                  "help": f"learning: comma-separated, some of {','.join(ALGORITHMS)} (default all)"}),
             (("--conditions",), {"type": _names(tuple(CONDITIONS)),
                                  "help": f"reward-trust: comma-separated, some of {','.join(CONDITIONS)} (default all)"}),
             (("--jobs",), {"type": _count(1, 256, "a number of worker processes"),
                            "help": "learning, reward-trust: runs side by side in this many single-threaded processes (default 1)"}),
             (("--out",), {"help": "learning, reward-trust: the bench's folder; finished runs in it are kept and skipped "
                                   "(default runs/bench-NAME/TASK-OBS)"}),
             (("--merge",), {"nargs": "+", "metavar": "DIR",
                             "help": "learning, reward-trust: run nothing, report over these folders' finished runs (into --out)"}),
             config=False)
    return parser


# What to do about an OSError the user can fix, by errno: the file or folder it names comes first.
_OS_ADVICE = {
    errno.ENOENT: "does not exist; check the path",
    errno.EACCES: "cannot be accessed (permission denied); check its permissions or choose another path",
    errno.EPERM: "cannot be changed (operation not permitted); check its permissions or choose another path",
    errno.EISDIR: "is a folder where a file was expected; give the path of a file",
    errno.ENOTDIR: "runs through a file where a folder was expected; choose another path",
    errno.EEXIST: "already exists; move it away or choose another path",
    errno.ENOTEMPTY: "is a folder that is not empty; move it away or choose another path",
    errno.ENOSPC: "could not be written: the disk is full; free some space or choose an output folder on another disk",
    errno.EDQUOT: "could not be written: the disk quota is used up; free some space or choose another output folder",
    errno.EFBIG: "could not be written: the file grew too large for its file system; choose an output folder on another disk",
    errno.EROFS: "is on a read-only file system; choose an output folder you can write to",
    errno.ENAMETOOLONG: "is too long a name for the file system; choose a shorter path",
    errno.ELOOP: "is a loop of symbolic links; fix the link or choose another path",
}


def _os_sentence(err: OSError) -> str:
    """One sentence for an OSError: the path it names, what happened and what to do."""
    advice = _OS_ADVICE.get(err.errno)
    path = err.filename2 if err.errno == errno.EEXIST and err.filename2 else err.filename
    if advice and path is not None:
        return f"'{path}' {advice}."
    if advice:
        return f"A file {advice}."
    what = err.strerror or str(err) or type(err).__name__
    where = f" ('{path}')" if path is not None else ""
    return f"{what}{where}; check the files, folders and servers the command uses (run with --debug for the details)."


def _import_sentence(err: ImportError) -> str:
    """Our own import errors already say what to install; a bare 'No module named' gets that said."""
    if isinstance(err, ModuleNotFoundError) and err.name and str(err).startswith("No module named"):
        return (f"The Python module '{err.name}' is not installed; install it for the robot, camera or reward model "
                "the config chose (run with --debug to see where it was needed).")
    return str(err)


def _report_bug(err: BaseException) -> str:
    """Save the traceback of an unexpected error to a file; the sentence that points to it."""
    try:
        with tempfile.NamedTemporaryFile("w", prefix="dsrl-real-error-", suffix=".txt", delete=False) as file:
            traceback.print_exception(type(err), err, err.__traceback__, file=file)
        where = f"its traceback is in {file.name}"
    except OSError:
        traceback.print_exception(type(err), err, err.__traceback__)
        where = "its traceback is above"
    summary = (str(err).splitlines() or [""])[0]
    return (f"Unexpected {type(err).__name__}{': ' + summary if summary else ''}; this is a bug in dsrl-real, "
            f"please report it with the command you ran ({where}; --debug shows it here).")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # Overrides may come after flags (`train --resume a=1`); argparse leaves those in `extra`.
    stray = [x for x in extra if "=" not in x or x.startswith("-")]
    if stray or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    debug = args.debug

    def fail(message: str, code: int) -> int:
        if debug:
            traceback.print_exc()
        print(f"dsrl-real: {message}", file=sys.stderr)
        return code

    try:
        return args.func(args)
    except EmergencyStop as err:
        return fail(str(err), 3)
    except StaleFrameError as err:  # the arm was stopped and the env closed on the way out
        return fail(str(err), 1)
    except UserError as err:
        return fail(str(err), 2)
    except OSError as err:  # a path that is missing, a file where a folder should be, a full disk
        return fail(_os_sentence(err), 2)
    except ImportError as err:  # an optional dependency (ROS 2, a camera SDK, a reward model's) that is not installed
        return fail(_import_sentence(err), 2)
    except KeyboardInterrupt:
        return fail("Interrupted.", 130)
    except Exception as err:
        if debug:
            raise
        print(f"dsrl-real: {_report_bug(err)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
