"""Nothing a run wrote is lost or changed by a fault: a full disk at any write of a checkpoint, a
SIGKILL mid-checkpoint, a flipped bit, a truncated file, a torn metrics line, a second writer, or a
user following the advice of an error. Each test checks the sentence and that every file written
before the fault is as it was (sha256 of each, `hashes`)."""

import errno
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from conftest import FAST_TRAIN

from dsrl_real.analysis.metrics import MetricsLogger, read_records
from dsrl_real.analysis.report import read_metrics
from dsrl_real.config import ConfigError
from dsrl_real.policies.checkpoint import CheckpointError, load_policy, save_policy
from dsrl_real.recording import RecordingError, RunRecorder
from dsrl_real.runlock import LOCK_FILE, RunLock
from dsrl_real.storage import atomic_file
from dsrl_real.train import checkpoints

NO_RECORDING = "train.record=false"
CHECKPOINT_FILES = ["agent.msgpack", "counters.json", "manifest.json", "replay/index.json", "replay/segment_000000_g000000000004.npz"]
SEGMENT = "replay/segment_000000_g000000000012.npz"  # the replay buffer's one segment after 3 episodes of 4 time indices


def episodes_logged(out: Path) -> list[int]:
    return [r["episode"] for r in read_records(out / "metrics.jsonl") if r["kind"] == "episode"]


def flip_bit(path: Path, at: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0x10
    path.write_bytes(bytes(data))


def leftovers(out: Path) -> list[str]:
    """Temporary files and staging folders anywhere in the run folder."""
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".staging-"))


@pytest.fixture(scope="module")
def three_episodes(tmp_path_factory):
    """A finished tiny run of 3 episodes (checkpoints episode_000002 and episode_000003), without recording."""
    from dsrl_real.config import load_config
    from dsrl_real.train.trainer import DSRLTrainer

    out = tmp_path_factory.mktemp("three") / "run"
    trainer = DSRLTrainer(load_config(overrides=[*FAST_TRAIN, f"train.out_dir={out}", NO_RECORDING, "train.env_steps=36"]))
    try:
        trainer.run()
    finally:
        trainer.close()
    return out


@pytest.fixture
def run_copy(three_episodes, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(three_episodes, out)
    return out


# ---- atomic files ---------------------------------------------------------------------------------
class Fault(OSError):
    pass


@pytest.mark.parametrize("where", ["write", "flush", "fsync", "close", "replace"])
def test_an_atomic_write_that_fails_anywhere_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path, monkeypatch, where):
    target = tmp_path / "counters.json"
    target.write_bytes(b"old")
    real_fdopen = os.fdopen

    class FailingFile:
        def __init__(self, f):
            self.f = f

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.close()

        def write(self, data):
            if where == "write":
                raise Fault(errno.ENOSPC, "No space left on device")
            return self.f.write(data)

        def flush(self):
            self.f.flush()
            if where == "flush":
                raise Fault(errno.ENOSPC, "No space left on device")

        def close(self):
            self.f.close()
            if where == "close":
                raise Fault(errno.EFBIG, "File too large")

    def fail(*args):
        raise Fault(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdopen", lambda *a, **k: FailingFile(real_fdopen(*a, **k)))
    if where in ("fsync", "replace"):
        monkeypatch.setattr(os, where, fail)
    with pytest.raises(Fault):
        with atomic_file(target) as f:
            f.write(b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["counters.json"]


# ---- a full disk at any write of a checkpoint ---------------------------------------------------------
class DiskFull:
    """Counts the file-system calls a checkpoint makes (each write, flush and close of a file it
    writes, each fsync, mkdir, rename and replace) and fails the `fail_at`-th with `err`."""

    def __init__(self, monkeypatch, fail_at: int | None, err: int):
        self.calls, self.fail_at, self.err, self.failed = [], fail_at, err, None
        real_fdopen = os.fdopen
        outer = self

        class CountedFile:
            def __init__(self, f):
                self.f, self.name = f, Path(os.readlink(f"/proc/self/fd/{f.fileno()}")).name
                if self.name.endswith(".tmp"):  # mkstemp's 8 random characters: the same label in every save
                    self.name = self.name[:-12] + "~.tmp"

            def __getattr__(self, name):
                return getattr(self.f, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.close()

            def write(self, data):
                outer.call(f"write {self.name}")
                return self.f.write(data)

            def flush(self):
                outer.call(f"flush {self.name}")
                self.f.flush()

            def close(self):
                try:
                    outer.call(f"close {self.name}")
                finally:
                    self.f.close()

        def counted(name, real):
            def call(*args, **kwargs):
                self.call(f"{name} {Path(str(args[-1])).name if args and not isinstance(args[-1], int) else ''}")
                return real(*args, **kwargs)
            return call

        monkeypatch.setattr(os, "fdopen", lambda *a, **k: CountedFile(real_fdopen(*a, **k)))
        for name in ("fsync", "mkdir", "rename", "replace", "link"):
            monkeypatch.setattr(os, name, counted(name, getattr(os, name)))

    def call(self, what: str) -> None:
        self.calls.append(what)
        if len(self.calls) == self.fail_at:
            self.failed = what
            raise OSError(self.err, os.strerror(self.err))


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EFBIG])
def test_a_full_disk_at_any_write_of_a_checkpoint_changes_no_earlier_file(three_episodes, tmp_path, monkeypatch, caplog,
                                                                          fast_trainer, hashes, err):
    trainer = fast_trainer(tmp_path / "unused", NO_RECORDING)
    dry = tmp_path / "dry"
    shutil.copytree(three_episodes, dry)
    trainer.out_dir = dry
    assert trainer.restore() and trainer.episodes == 3
    trainer.episodes = 4
    with monkeypatch.context() as m:
        counter = DiskFull(m, None, err)
        trainer.save_checkpoint()
    calls = counter.calls
    assert f"link {Path(SEGMENT).name}" in calls  # unchanged since episode 3: linked, not written
    for name in ("agent.msgpack", "index.json", "counters.json", "manifest.json", "LATEST"):
        for op in ("write", "flush", "close"):
            assert f"{op} {name}~.tmp" in calls, (op, name)
        assert f"replace {name}" in calls, name
    assert {"rename episode_000004", "rename .pruning-episode_000002"} <= set(calls) and calls.count("fsync ") >= 10
    # Every call site: the first and the last time each call is made (the replay file takes many writes).
    points = sorted({calls.index(c) + 1 for c in calls} | {len(calls) - calls[::-1].index(c) for c in calls})
    for k in points:
        out = tmp_path / f"fail_{k}"
        shutil.copytree(three_episodes, out)
        before = hashes(out)
        trainer.out_dir = out
        caplog.clear()
        with monkeypatch.context() as m:
            fault = DiskFull(m, k, err)
            try:
                trainer.save_checkpoint()
            except CheckpointError as raised:
                error = str(raised)
            else:
                error = None
        assert fault.failed == calls[k - 1]
        if fault.failed.startswith("mkdir") and error is None:  # Path.mkdir(exist_ok=True) of a folder that is there
            assert (out / "LATEST").read_text() == "episode_000004"
            continue
        after = hashes(out)
        assert leftovers(out) == [], (k, fault.failed)
        # Every earlier file is as it was; the only new files are a complete checkpoint, which LATEST may name.
        assert {f: after.get(f) for f in before if f != "LATEST"} == {f: h for f, h in before.items() if f != "LATEST"}
        new_checkpoint = out / "checkpoints" / "episode_000004"
        assert all(f.startswith("checkpoints/episode_000004/") for f in set(after) - set(before)), (k, fault.failed)
        assert not new_checkpoint.exists() or checkpoints.problem(new_checkpoint) is None
        latest = (out / "LATEST").read_text()
        assert latest == "episode_000003" or (latest == "episode_000004" and new_checkpoint.exists())
        if error is None:  # the fault hit the removal of the oldest checkpoint, after the new one was safe
            assert fault.failed == "rename .pruning-episode_000002" and latest == "episode_000004"
            assert "Removing an old checkpoint" in caplog.text
        else:
            assert error == (f"Writing the checkpoint of episode 4 into '{out / 'checkpoints'}' failed ({os.strerror(err)}); "
                             "the earlier checkpoints are intact: free the space, then run again with --resume to "
                             "continue from the last one.")
        assert trainer.restore() and trainer.episodes == (4 if new_checkpoint.exists() else 3)
        trainer.episodes = 4


def test_a_full_disk_mid_run_logs_no_episode_twice_and_leaves_no_temporary_file(tmp_path, monkeypatch, fast_trainer, hashes):
    out = tmp_path / "run"
    real_replace = os.replace

    def replace(src, dst):
        if "episode_000002" in str(dst):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(CheckpointError, match=r"^Writing the checkpoint of episode 2 into .* failed \(No space left on device\)"):
        fast_trainer(out, NO_RECORDING, "train.env_steps=36").run()
    monkeypatch.undo()
    assert episodes_logged(out) == [1] and leftovers(out) == []  # episode 2 is not logged: no checkpoint holds it
    assert (out / "LATEST").read_text() == "episode_000001" and checkpoints.problem(out / "checkpoints" / "episode_000001") is None
    assert sorted(hashes(out)) == ["LATEST", *("checkpoints/episode_000001/" + f for f in CHECKPOINT_FILES), "metrics.jsonl"]
    logged = (out / "metrics.jsonl").read_text()
    fast_trainer(out, NO_RECORDING, "train.env_steps=36").run(resume=True)
    assert episodes_logged(out) == [1, 2, 3] and (out / "metrics.jsonl").read_text().startswith(logged)


# ---- SIGKILL during a checkpoint write ------------------------------------------------------------------
CHILD = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, {tests!r})
    from conftest import FAST_TRAIN
    import dsrl_real.train.checkpoints as ck
    from dsrl_real.config import load_config
    from dsrl_real.train.trainer import DSRLTrainer

    out, block_at = sys.argv[1], int(sys.argv[2])
    real_save, real_fsync, state = ck.save, os.fsync, {{"armed": False, "calls": 0}}

    def save(out_dir, episodes, write_files):  # the checkpoint of episode 3, made by the training loop
        state["armed"] = episodes == 3
        return real_save(out_dir, episodes, write_files)

    def fsync(fd):
        if state["armed"]:
            state["calls"] += 1
            if state["calls"] == block_at:
                print("blocked", os.readlink(f"/proc/self/fd/{{fd}}"), flush=True)
                time.sleep(600)
        return real_fsync(fd)

    ck.save, os.fsync = save, fsync
    cfg = load_config(overrides=[*FAST_TRAIN, f"train.out_dir={{out}}", "train.record=false", "train.env_steps=100000"])
    DSRLTrainer(cfg).run()
""")


@pytest.mark.parametrize("block_at, resumes_at", [(1, 2), (9, 2), (12, 3)])  # mid agent.msgpack, mid manifest, mid LATEST
def test_sigkill_during_a_checkpoint_write_resumes_from_a_good_checkpoint(tmp_path, fast_trainer, hashes, block_at, resumes_at):
    out = tmp_path / "run"
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(tests=str(Path(__file__).parent)), str(out), str(block_at)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = child.stdout.readline()
        assert line.startswith("blocked"), "the training process ended before the checkpoint write"
        before = {f: h for f, h in hashes(out).items() if "staging" not in f and not f.endswith(".tmp")}
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert episodes_logged(out) == [1, 2]  # episode 3 waited for its checkpoint
    resumed = fast_trainer(out, NO_RECORDING, "train.env_steps=60")
    assert resumed.restore() and resumed.episodes == resumes_at
    assert {f: h for f, h in hashes(out).items() if f in before} == before  # resuming changed nothing earlier
    resumed.run(resume=True)
    assert episodes_logged(out) == [1, 2, 3, 4, 5] and leftovers(out) == []  # each once, the killed write cleaned up
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["episode_000004", "episode_000005"]


# ---- bit flips and truncated files -------------------------------------------------------------------
@pytest.mark.parametrize("name, problem", [
    ("agent.msgpack", "episode_000003/agent.msgpack does not match its checksum (a corrupt file)"),
    (SEGMENT, f"episode_000003/{SEGMENT} does not match its checksum (a corrupt file)"),
    ("counters.json", "episode_000003/counters.json does not match its checksum (a corrupt file)"),
    ("manifest.json", "episode_000003/manifest.json is unreadable"),
])
def test_a_flipped_bit_in_a_checkpoint_is_refused_and_the_previous_checkpoint_resumed(run_copy, fast_trainer, hashes, caplog,
                                                                                      name, problem):
    flip_bit(run_copy / "checkpoints" / "episode_000003" / name, 0.5 if name != "manifest.json" else 0.02)
    before = hashes(run_copy)
    trainer = fast_trainer(run_copy, NO_RECORDING, "train.env_steps=48")
    with caplog.at_level(logging.WARNING, logger="dsrl_real.train.trainer"):
        assert trainer.restore() and trainer.episodes == 2
    assert [r.getMessage() for r in caplog.records] == [
        f"Resuming from the checkpoint {run_copy / 'checkpoints' / 'episode_000002'} instead ({problem}); "
        "the episodes after episode 2 run again."]
    assert hashes(run_copy) == before


def test_a_truncated_replay_file_falls_back_with_one_sentence_also_in_a_checkpoint_without_manifest(run_copy, fast_trainer,
                                                                                                      hashes, caplog):
    replay = run_copy / "checkpoints" / "episode_000003" / SEGMENT
    size = replay.stat().st_size
    os.truncate(replay, size // 2)
    trainer = fast_trainer(run_copy, NO_RECORDING)
    with caplog.at_level(logging.WARNING, logger="dsrl_real.train.trainer"):
        assert trainer.restore() and trainer.episodes == 2
    assert f"(episode_000003/{SEGMENT} is truncated ({size // 2} of {size} bytes))" in caplog.text
    for folder in checkpoints.listed(run_copy):  # as written before checkpoints had manifests
        (folder / "manifest.json").unlink()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dsrl_real.train.trainer"):
        assert trainer.restore() and trainer.episodes == 2
    assert (f"(episode_000003/replay cannot be loaded (ReplayFileError: The replay buffer segment '{replay}' is truncated "
            "or corrupt (BadZipFile)))") in caplog.text


def test_following_the_advice_of_a_failed_resume_loses_nothing(run_copy, fast_trainer, hashes):
    for folder in ("episode_000002", "episode_000003"):
        flip_bit(run_copy / "checkpoints" / folder / "agent.msgpack")
    before = hashes(run_copy)
    with pytest.raises(CheckpointError) as failed:
        fast_trainer(run_copy, NO_RECORDING, "train.env_steps=48").run(resume=True)
    assert str(failed.value) == (
        f"No checkpoint in '{run_copy / 'checkpoints'}' can be resumed (episode_000003/agent.msgpack does not match its "
        "checksum (a corrupt file); episode_000002/agent.msgpack does not match its checksum (a corrupt file)); restore the "
        "files from a backup, or choose another train.out_dir to start a new run (this folder stays as it is).")
    assert hashes(run_copy) == before
    # Even a user who deletes LATEST (as an earlier version advised) cannot start a run over this one.
    (run_copy / "LATEST").unlink()
    before = hashes(run_copy)
    with pytest.raises(ConfigError, match=r"already holds a run; pass --resume to continue it or choose another train.out_dir\.$"):
        fast_trainer(run_copy, NO_RECORDING, "train.env_steps=12").run()
    assert hashes(run_copy) == before


def test_a_folder_with_an_earlier_runs_files_but_no_checkpoint_is_never_written_over(tmp_path, fast_trainer, hashes):
    out = tmp_path / "run"
    out.mkdir()
    MetricsLogger(out, wandb_mode="disabled").log("eval", 0, success_rate=0.5)
    before = hashes(out)
    sentence = (f"'{out}' already holds an earlier run's files (metrics.jsonl) and no checkpoint to continue from; "
                "choose another train.out_dir.")
    for resume in (False, True):
        with pytest.raises(ConfigError) as refused:
            fast_trainer(out, NO_RECORDING, "train.env_steps=12").run(resume=resume)
        assert str(refused.value) == sentence
    assert hashes(out) == before


def test_latest_never_leads_out_of_the_run_folder(run_copy, tmp_path, fast_trainer, caplog):
    elsewhere = tmp_path / "elsewhere" / "x"  # a checkpoint of 99 episodes outside the run folder
    shutil.copytree(run_copy / "checkpoints" / "episode_000003", elsewhere)
    counters = json.loads((elsewhere / "counters.json").read_text())
    (elsewhere / "counters.json").write_text(json.dumps({**counters, "episodes": 99}))
    (elsewhere / "manifest.json").unlink()
    (run_copy / "LATEST").write_text("../../elsewhere/x")
    trainer = fast_trainer(run_copy, NO_RECORDING)
    with caplog.at_level(logging.WARNING, logger="dsrl_real.train.trainer"):
        assert trainer.restore() and trainer.episodes == 3
    assert [r.getMessage() for r in caplog.records] == [
        f"{run_copy / 'LATEST'} names '../../elsewhere/x', which is not a checkpoint of this run; it was ignored and "
        "episode_000003 resumed."]


def test_a_policy_file_with_a_flipped_bit_is_refused_naming_the_file(tmp_path):
    from test_policy import random_policy

    policy, _ = random_policy()
    path = save_policy(tmp_path / "policy.msgpack", policy)
    load_policy(path)
    flip_bit(path, 0.6)  # inside the parameters: without a checksum it would load and act
    with pytest.raises(CheckpointError) as refused:
        load_policy(path)
    assert str(refused.value) == (f"The dsrl_real policy checkpoint '{path}' is corrupt (its bytes do not match the checksum "
                                  "stored in it); restore it from a copy or pretrain one with `dsrl-real pretrain`.")


# ---- torn metrics lines ------------------------------------------------------------------------------
def test_a_torn_last_metrics_line_is_skipped_by_every_reader_and_cut_before_the_next_append(tmp_path, caplog):
    path = tmp_path / "metrics.jsonl"
    complete = '{"kind": "eval", "step": 0, "success_rate": 0.5}\n{"kind": "episode", "step": 12, "episode": 1}\n'
    path.write_text(complete + '{"kind": "episode", "st')
    assert [r["step"] for r in read_records(path)] == [0, 12] and [r["step"] for r in read_metrics(tmp_path)] == [0, 12]
    logger = MetricsLogger(tmp_path, wandb_mode="disabled")
    assert [r["step"] for r in logger.records("episode")] == [12]
    with caplog.at_level(logging.WARNING, logger="dsrl_real.analysis.metrics"):
        logger.log("episode", 24, episode=2)
    assert path.read_text().startswith(complete) and [r["step"] for r in read_records(path)] == [0, 12, 24]
    assert caplog.messages == [f"{path} ended in a line torn by a crash (23 bytes); it was cut off before appending."]
    path.write_text(complete.rstrip("\n"))  # a whole record that only lacks its newline is kept
    MetricsLogger(tmp_path, wandb_mode="disabled").log("episode", 36, episode=3)
    assert [r["step"] for r in read_records(path)] == [0, 12, 36]


def test_a_run_resumed_after_a_crash_tore_its_metrics_reads_every_record(tmp_path, fast_trainer):
    out = tmp_path / "run"
    fast_trainer(out, NO_RECORDING, "train.env_steps=24").run()
    path = out / "metrics.jsonl"
    text = path.read_text()
    path.write_text(text[:-40])  # the final evaluation's line, torn
    fast_trainer(out, NO_RECORDING, "train.env_steps=36").run(resume=True)
    assert path.read_text().startswith(text[:text.rstrip("\n").rfind("\n") + 1])  # every complete line as it was
    assert episodes_logged(out) == [1, 2, 3] and [r["kind"] for r in read_records(out / "metrics.jsonl")].count("final_eval") == 1


# ---- one writer per run folder -----------------------------------------------------------------------
HOLDER = textwrap.dedent("""
    import sys, time
    from dsrl_real.runlock import RunLock
    RunLock.acquire(sys.argv[1], "a training run")
    print("held", flush=True)
    time.sleep(600)
""")


def test_the_run_lock_names_its_holder_and_a_sigkilled_holder_wedges_nothing(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "held\n"
        with pytest.raises(RecordingError, match=rf"^'{tmp_path}' is in use by a training run \(pid {child.pid} on .+, started "
                                                  r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\); stop it first or choose another run directory\.$"):
            RunRecorder(tmp_path, [], 10.0)
    finally:
        child.kill()  # SIGKILL: no cleanup runs; the kernel drops the flock with the process
        child.wait()
    with RunLock.acquire(tmp_path, "a test") as lock:
        assert lock.held and json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
        with pytest.raises(ConfigError, match=r"is in use by a test \(pid"):  # refused within one process too
            RunLock.acquire(tmp_path, "another", error=ConfigError)
    assert (tmp_path / LOCK_FILE).read_text() == ""


def test_a_second_trainer_without_recording_is_refused_until_the_first_is_killed(tmp_path, fast_trainer, hashes):
    out = tmp_path / "run"
    fast_trainer(out, NO_RECORDING, "train.env_steps=24").run()
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from conftest import FAST_TRAIN
        from dsrl_real.config import load_config
        from dsrl_real.train.trainer import DSRLTrainer
        trainer = DSRLTrainer(load_config(overrides=[*FAST_TRAIN, "train.out_dir={out}", "train.record=false",
                                                     "train.env_steps=1000"]))
        def reset(**kwargs):  # the first trainer, busy at its robot
            print("running", flush=True)
            time.sleep(600)
        trainer.env.reset = reset
        trainer.run(resume=True)
    """)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert child.stdout.readline() == "running\n"
        before = hashes(out)
        with pytest.raises(ConfigError, match=rf"^'{out}' is in use by a training run \(pid {child.pid} on .+\); stop it first "
                                              r"or choose another train.out_dir\.$"):
            fast_trainer(out, NO_RECORDING, "train.env_steps=36").run(resume=True)
        assert hashes(out) == before
    finally:
        child.kill()
        child.wait()
    fast_trainer(out, NO_RECORDING, "train.env_steps=36").run(resume=True)
    assert episodes_logged(out) == [1, 2, 3]


def test_a_recording_trainer_shares_its_folder_lock_with_its_recorder_and_refuses_another(tmp_path, fast_trainer):
    out = tmp_path / "run"
    with RunRecorder(out, [], 10.0):
        with pytest.raises(ConfigError, match=rf"^'{out}' is in use by a recorder \(pid {os.getpid()} on "):
            fast_trainer(out, "train.env_steps=12").run()
    fast_trainer(out / "b", "train.env_steps=12").run()  # its own recorder runs under the trainer's lock
    assert (out / "b" / "meta" / "dsrl_episodes.jsonl").is_file() and not (out / "b" / "meta" / ".recorder.lock").exists()
    assert episodes_logged(out / "b") == [1]


def test_two_checkpoint_saves_at_once_never_remove_each_others_files(tmp_path):
    """A save clears the staging folders a crash left; a second save in the same process (the
    learner's, and a stop's) waits instead of clearing the first one's staging folder."""
    inside, errors = threading.Event(), []

    def slow_files(folder):
        (folder / "a.bin").write_bytes(b"a" * 100)
        inside.set()
        threading.Event().wait(0.5)  # room for the second save to start; correctness does not depend on it
        (folder / "b.bin").write_bytes(b"b" * 100)

    def save_first():
        try:
            checkpoints.save(tmp_path, 1, slow_files)
        except Exception as err:  # noqa: BLE001 - the assertion below names it
            errors.append(err)

    first = threading.Thread(target=save_first)
    first.start()
    inside.wait(10)
    checkpoints.save(tmp_path, 2, lambda folder: (folder / "c.bin").write_bytes(b"c"))
    first.join()
    assert errors == []
    assert [p.name for p in checkpoints.listed(tmp_path)] == ["episode_000002", "episode_000001"]
    assert all(checkpoints.problem(p) is None for p in checkpoints.listed(tmp_path))
