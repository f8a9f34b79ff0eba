"""Record the two kinds of run a newcomer makes first, for the LeRobot check (check_dataset.py):
a short simulated DSRL training run with both cameras (warm start, training and evaluation episodes)
and a `collect-demos` run; the v2.1-layout fixture run (tests/data/legacy_v21_run) exported; and a
recording killed (SIGKILL) mid-episode, as the crash left it (`crashed`: its sealed episodes) and
after the next recorder reopened it (`healed`: the cut-off episode sealed as partial). Runs in the
project's own venv.

    python tests/lerobot/record_samples.py OUT_DIR  ->  OUT_DIR/{train,demos,exported,crashed,healed}

Next to each run it leaves `<run>/thumbnails.npz`: every row's camera frames as this project's reader
decodes them, subsampled, so the check can prove LeRobot decodes the frame each row points at.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from dsrl_real.cli import main
from dsrl_real.recording import RecordedRun, RunRecorder

TRAIN = ["policy.external=dsrl_real.policies.examples:scaled_noise_policy", "train.wandb=disabled", "train.eval_episodes=2",
         "train.eval_every_steps=24", "train.warm_start_episodes=2", "agent.hidden_dim=32", "agent.batch_size=16",
         "agent.utd=2", "task.max_steps=12", "train.env_steps=48"]
THUMB = 8
CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    from dsrl_real.recording import RunRecorder

    rec = RunRecorder(sys.argv[1], ["front"], 5.0)
    for e in range(3):
        ep = rec.begin_episode("train", e, "pull the drawer out")
        for t in range(12):
            ep.add_frames({"front": np.full((32, 32, 3), (t * 9 + e * 50) % 256, np.uint8)})
            ep.add_step(proprio=np.full(7, t, np.float32), action=np.full(7, e + t / 100, np.float32), reward=0.0,
                        noise=np.ones((4, 7), np.float32) if t % 4 == 0 else None)
        if e < 2:
            ep.add_step(proprio=np.full(7, 12, np.float32))
            ep.finish(success=False, terminated=False, truncated=True)
    ep.flush()
    print("ready", flush=True)
    sys.stdin.read()  # killed here, mid-episode
""")


def crash(out: Path) -> None:
    """A recorder killed mid-episode: the folder as left (`crashed`), and after reopening it (`healed`)."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(out / "crashed")], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    assert child.stdout.readline().strip() == "ready"
    child.send_signal(signal.SIGKILL)
    child.wait()
    shutil.copytree(out / "crashed", out / "healed")
    RunRecorder(out / "healed", ["front"], 5.0).close()


def thumbnails(run_dir: Path) -> None:
    """Each camera's frames of every row in dataset order, every `THUMB`-th pixel per axis."""
    run = RecordedRun(run_dir)
    out = {}
    for camera in run.cameras:
        frames = [run.frames(r["episode_index"], camera)[: r["length"]] for r in run.records]
        out[f"observation.images.{camera}"] = np.concatenate(frames)[:, ::THUMB, ::THUMB]
    np.savez(run_dir / "thumbnails.npz", **out)


def record(out: Path) -> None:
    main(["train", *TRAIN, f"train.out_dir={out / 'train'}"])
    main(["collect-demos", "demos.episodes=3", "task.max_steps=30", f"demos.out_dir={out / 'demos'}"])
    main(["export", str(Path(__file__).parent.parent / "data" / "legacy_v21_run"), str(out / "exported")])
    crash(out)
    for name in ("train", "demos", "exported", "crashed", "healed"):
        thumbnails(out / name)


if __name__ == "__main__":
    record(Path(sys.argv[1]))
