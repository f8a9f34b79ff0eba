"""The default install (`pip install -e .`) runs the demo, training, evaluation and the report with no torch.

Proven without a second install: the commands run in a subprocess where every package that only an extra
brings (torch, transformers, wandb, ...) cannot be imported, as on a machine that never installed it;
and the default dependencies, followed through the metadata of the packages installed here, reach none of them.
"""

import json
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import jax
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from dsrl_real.analysis.metrics import WANDB_HINT
from dsrl_real.cli import DEMO_SUMMARY
from dsrl_real.machine import cpu_model, describe, usable_cores
from dsrl_real.rewards.hf_loading import INSTALL_HINT

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
EXTRAS = PROJECT["optional-dependencies"]

# Distributions only extras bring (or their heavy dependencies), and the modules they install.
EXTRA_ONLY = {"torch": "torch", "torchvision": "torchvision", "transformers": "transformers", "triton": "triton",
              "wandb": "wandb", "stable-baselines3": "stable_baselines3",
              "pyrealsense2": "pyrealsense2", "huggingface-hub": "huggingface_hub", "tokenizers": "tokenizers",
              "ray": "ray"}

BLOCKER = f"""
import importlib.abc, sys
BLOCKED = {sorted(EXTRA_ONLY.values())!r}
TRIED = set()

class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            TRIED.add(name.partition(".")[0])
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
from dsrl_real.cli import main
code = main(sys.argv[1:])
loaded = sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED and sys.modules[m] is not None)
print("BLOCKED-LOADED", loaded, file=sys.stderr)
sys.exit(code)
"""

EXTERNAL = "policy.external=dsrl_real.policies.examples:scaled_noise_policy"  # a base policy with no checkpoint
TINY = ["demos.episodes=2", "pretrain.steps=10", "pretrain.eval_every=10", "pretrain.checkpoint_every=10",
        "pretrain.batch_size=16", "policy.hidden_dim=16", "policy.embed_dim=8", "policy.inference_steps=2",
        "task.max_steps=12", "agent.hidden_dim=16", "agent.batch_size=8", "agent.utd=1",
        "train.warm_start_episodes=1", "train.eval_episodes=1", "train.final_eval_episodes=1", "train.eval_every_steps=1000",
        "cameras[0].width=32", "cameras[0].height=32", "cameras[1].width=32", "cameras[1].height=32"]


def run_without_extras(*args: str, code: int = 0) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-c", BLOCKER, *args], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert result.returncode == code, result.stderr[-3000:]
    assert result.stderr.endswith("BLOCKED-LOADED []\n")  # nothing slipped past the blocker
    return result


def last_error_line(result: subprocess.CompletedProcess) -> str:
    return result.stderr.strip().splitlines()[-2]


def last_json(result: subprocess.CompletedProcess) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_demo_eval_and_report_run_with_no_torch_transformers_or_wandb(tmp_path):
    """The demo trains with `dsrl-real train`'s trainer (DSRLTrainer.run, sim-truth rewards, recording with
    both cameras), then `eval` and `report` read the run it leaves. The demo also reports its wall time and machine."""
    demo = run_without_extras("demo", f"run.out_dir={tmp_path}", "run.eval_episodes=1", "train.env_steps=24", *TINY)
    summary = last_json(demo)
    assert summary["algorithm"] == "dsrl_sac" and summary["env_steps"] >= 24
    # train.wandb=offline is the default: without wandb the run says so once, on stderr, and goes on.
    assert demo.stderr.count(f"wandb is not installed; metrics go to metrics.jsonl only ({WANDB_HINT}") == 1
    # The demo's own wall time and machine, printed next to its results and kept in the run folder.
    assert summary["wall_time_s"] >= summary["collect_and_pretrain_s"] + summary["fine_tune_s"] > 0
    assert summary["machine"] == {**summary["machine"], "cores": usable_cores(), "python": platform.python_version(),
                                  "os": platform.platform(), "jax": jax.__version__, "jax_backend": "cpu"}
    assert summary["machine"]["cpu"] == cpu_model() != ""
    assert json.loads((Path(summary["run_dir"]) / DEMO_SUMMARY).read_text()) == summary
    assert demo.stderr.splitlines()[-2] == (f"fine-tuned (dsrl_sac): {summary['fine_tuned_success_rate']:.0%} success; the demo "
                                            f"took {summary['wall_time_s'] / 60:.1f} min on {describe(summary['machine'])}")
    out = Path(summary["run_dir"]) / "dsrl"
    assert (out / "LATEST").is_file() and (out / "metrics.jsonl").is_file() and (out / "learning_curve.png").is_file()

    policy = f"policy.checkpoint={summary['policy']}"
    evaluation = last_json(run_without_extras("eval", f"train.out_dir={out}", policy, "--episodes", "1", *TINY))
    assert evaluation["episodes"] == 1 and evaluation["label"] == "dsrl_sac"

    report = last_json(run_without_extras("report", str(out)))
    assert Path(report["json"]).is_file() and report["episodes"] >= 2


def test_a_learned_reward_backend_without_the_rewards_extra_is_one_sentence_naming_it(tmp_path):
    result = run_without_extras("train", f"train.out_dir={tmp_path}", EXTERNAL, "reward.backend=roboreward",
                                f"reward.model={tmp_path}", *TINY, code=2)
    assert last_error_line(result) == (
        f"dsrl-real: The learned reward backends need PyTorch, torchvision and transformers: {INSTALL_HINT}.")
    assert INSTALL_HINT == 'pip install -e ".[rewards]"'


def test_wandb_online_without_the_wandb_extra_is_one_sentence_naming_it(tmp_path):
    result = run_without_extras("train", f"train.out_dir={tmp_path}", EXTERNAL, "train.wandb=online", *TINY, code=2)
    assert last_error_line(result) == (
        'dsrl-real: train.wandb=online needs wandb, which is not installed: pip install -e ".[wandb]", '
        "or set train.wandb=offline or disabled.")


def _name(requirement: str) -> str:
    return canonicalize_name(Requirement(requirement).name)


def test_the_default_dependencies_name_no_extra_only_package_and_the_extras_bring_them():
    assert {_name(r) for r in PROJECT["dependencies"]} & set(EXTRA_ONLY) == set()
    assert {_name(r) for r in EXTRAS["rewards"]} == {"torch", "torchvision", "transformers"}
    assert {_name(r) for r in EXTRAS["bench"]} == {"stable-baselines3", "torch"}
    assert {_name(r) for r in EXTRAS["wandb"]} == {"wandb"}
    assert {_name(r) for r in EXTRAS["ray"]} == {"ray"}
    assert re.search(r'\[rewards\]"', INSTALL_HINT) and re.search(r'\[wandb\]"', WANDB_HINT)


def test_the_default_dependencies_as_installed_here_pull_in_no_extra_only_package():
    """Follows each default dependency's own requirements (markers evaluated for this Python, extras not taken)."""
    environment = {**default_environment(), "extra": ""}
    seen, todo = set(), [_name(r) for r in PROJECT["dependencies"]]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate(environment):
                todo.append(canonicalize_name(requirement.name))
    assert {"jax", "flax", "pyarrow", "av", "matplotlib"} <= seen
    assert seen & set(EXTRA_ONLY) == set()
    assert not [name for name in seen if name.startswith("nvidia-")]
