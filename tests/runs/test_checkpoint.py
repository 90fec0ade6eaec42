"""Never lose a run: SIGKILL at random moments, a full disk, and checkpoints that are damaged or hostile.

The kill test trains real `ganforge` processes that save a checkpoint every step and kills them
with SIGKILL at random moments, most of them mid-save. A fresh `python -m ganforge.cli` spends
seconds importing torch, so the processes here are forks of one warm interpreter that has done
those imports and one tiny run (`Launcher`): each fork is a new process that runs
`ganforge.cli.main()` with its own argv, as the `ganforge` command does, and is killed, polled
and reaped like one.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import pickle
import random
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import ganforge
from ganforge.errors import CheckpointError
from ganforge.runs.checkpoint import (
    CHECKPOINT_FILES,
    TENSOR_FILES,
    Checkpoint,
    find_checkpoint,
    list_checkpoints,
    read_checkpoint,
)
from ganforge.runs.lock import LOCK_FILE

SOURCE = Path(__file__).resolve().parents[2] / "src" / "ganforge"
VICTIM_FLAGS = ["--model", "toy", "--data", "ring8", "--width", "16", "--batch-size", "32", "--checkpoint-every", "1",
                "--keep-checkpoints", "2", "--sample-every", "0", "--log-every", "1", "--no-tensorboard", "--quiet"]
TINY_RUN = {"model": "toy", "data": "ring8", "width": 16, "batch_size": 32, "log_every": 1, "sample_every": 0,
            "checkpoint_every": 1, "keep_checkpoints": 0, "tensorboard": False}
KILLS = 20
CHAINS = 2  # runs killed side by side
SEED = 20240523
KILL_DELAY_S = (0.0, 1.0)  # after the victim's first checkpoint (its start-up is over then)
SECONDS = 120  # the most any one process may take here before the test fails instead of hanging
TEMPORARY = re.compile(r"^\.step_\d+\.(tmp|old)-\d+$")


def environment() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("FORCE_COLOR", "COLUMNS")}
    env["OMP_NUM_THREADS"] = "1"
    return env


# A warm interpreter that forks one `ganforge` process per request (JSON lines on stdin):
# {"args", "cwd", "stdout", "stderr", "fsize"} -> the child's PID; {"poll": PID} -> its exit code or null.
LAUNCHER = r"""
import gc, json, os, resource, signal, sys, tempfile, traceback
import ganforge, ganforge.cli, torch

torch.set_num_threads(1)  # no thread pool, so forking is safe after the warm-up run
with tempfile.TemporaryDirectory() as folder:  # a one-step run pays the lazy imports and first calls once
    ganforge.train(out=os.path.join(folder, "run"), steps=1, model="toy", data="ring8", width=16, batch_size=32,
                   tensorboard=False, show_progress=False)
gc.freeze()  # the children's garbage collector leaves the shared pages alone, so they are not copied

for line in sys.stdin:
    request = json.loads(line)
    if "poll" in request:
        pid, status = os.waitpid(request["poll"], os.WNOHANG)
        print(json.dumps(os.waitstatus_to_exitcode(status) if pid else None), flush=True)
        continue
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            for fd, name in ((1, request["stdout"]), (2, request["stderr"])):
                os.dup2(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
            os.chdir(request["cwd"])
            if request["fsize"]:
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
                resource.setrlimit(resource.RLIMIT_FSIZE, (request["fsize"], request["fsize"]))
            sys.argv = ["ganforge", *request["args"]]
            try:
                ganforge.cli.main()
                code = 0
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    print(json.dumps(pid), flush=True)
"""


@dataclass
class Process:
    pid: int
    stdout: Path
    stderr: Path


class Launcher:
    """Starts `ganforge` processes as forks of one warm interpreter; polls and reaps them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0
        self.live: set[int] = set()
        self.lock = threading.Lock()  # one request at a time; the kill test asks from two threads
        self.server = subprocess.Popen([sys.executable, "-c", LAUNCHER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       text=True, env=environment())

    def ask(self, request: dict) -> object:
        with self.lock:
            return self._ask(request)

    def _ask(self, request: dict) -> object:
        assert self.server.stdin is not None and self.server.stdout is not None
        self.server.stdin.write(json.dumps(request) + "\n")
        self.server.stdin.flush()
        ready, _, _ = select.select([self.server.stdout], [], [], SECONDS)
        assert ready, "the launcher did not answer"
        line = self.server.stdout.readline()
        assert line, f"the launcher died (exit {self.server.poll()})"
        return json.loads(line)

    def start(self, *args: object, cwd: Path, fsize: int = 0) -> Process:
        with self.lock:
            self.count += 1
            out, err = self.folder / f"{self.count}.out", self.folder / f"{self.count}.err"
        pid = self.ask({"args": [str(a) for a in args], "cwd": str(cwd), "stdout": str(out), "stderr": str(err),
                        "fsize": fsize})
        assert isinstance(pid, int)
        self.live.add(pid)
        return Process(pid, out, err)

    def poll(self, process: Process) -> int | None:
        code = self.ask({"poll": process.pid})
        if code is not None:
            self.live.discard(process.pid)
        return code  # type: ignore[return-value]

    def wait(self, process: Process, seconds: float = SECONDS) -> int:
        deadline = time.monotonic() + seconds
        while (code := self.poll(process)) is None:
            if time.monotonic() > deadline:
                os.kill(process.pid, signal.SIGKILL)
                pytest.fail(f"ganforge process {process.pid} ran over {seconds} s: {process.stderr.read_text()}")
            time.sleep(0.01)
        return code

    def close(self) -> None:
        for pid in self.live:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        assert self.server.stdin is not None
        self.server.stdin.close()
        self.server.wait(timeout=SECONDS)


@pytest.fixture(scope="module")
def launcher(tmp_path_factory):
    launcher = Launcher(tmp_path_factory.mktemp("launcher"))
    yield launcher
    launcher.close()


def one_line_error(code: int, stderr: str, *fragments: str) -> str:
    """Exit status 2 and exactly one `error: ...` line on stderr that holds every fragment."""
    assert code == 2, (code, stderr)
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def temporaries(run: Path) -> list[str]:
    folder = run / "checkpoints"
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) if folder.is_dir() else []


def assert_finite(checkpoint: Checkpoint) -> None:
    for name in ("generator", "discriminator", "training"):
        for key, tensor in getattr(checkpoint, name).items():
            assert not tensor.is_floating_point() or torch.isfinite(tensor).all(), (name, key)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# --- SIGKILL -------------------------------------------------------------------------------------


def wait_for_checkpoint_after(run: Path, step: int, victim: Process, launcher: Launcher) -> None:
    """Until the victim has saved a checkpoint later than ``step`` (so it started, resumed and saved)."""
    deadline = time.monotonic() + SECONDS
    while not (list_checkpoints(run) and int(list_checkpoints(run)[-1].name[5:]) > step):
        code = launcher.poll(victim)
        assert code is None, f"the victim exited with {code} before its first checkpoint: {victim.stderr.read_text()}"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.005)


def kill_and_resume(run: Path, rng: random.Random, kills: int, launcher: Launcher) -> list[str]:
    """Train in ``run``, SIGKILL, check, resume, ``kills`` times; the temporaries each kill left behind."""
    step = 0  # the step of the checkpoint the next victim resumes from
    left_behind = []
    for kill in range(kills):
        start = ["--out", run, *VICTIM_FLAGS] if kill == 0 else ["--resume", run, "--quiet"]
        victim = launcher.start("train", *start, "--steps", 1000000, cwd=run.parent)
        wait_for_checkpoint_after(run, step, victim, launcher)
        time.sleep(rng.uniform(*KILL_DELAY_S))
        os.kill(victim.pid, signal.SIGKILL)
        assert launcher.wait(victim) == -signal.SIGKILL, victim.stderr.read_text()

        left = temporaries(run)  # a save (tmp) or a deletion (old) that the kill interrupted
        assert all(TEMPORARY.match(name) for name in left), left
        left_behind.append(" ".join(left))
        assert all(path.name.startswith("step_") for path in list_checkpoints(run)), "temporaries are not listed"
        for path in list_checkpoints(run):  # every listed checkpoint is whole, wherever the kill landed
            assert_finite(read_checkpoint(path))
        checkpoint = read_checkpoint(run)
        assert find_checkpoint(run) == list_checkpoints(run)[-1] == checkpoint.path
        step = checkpoint.step

        check = launcher.start("train", "--resume", run, "--steps", step + 2, "--quiet", cwd=run.parent)
        assert launcher.wait(check) == 0, check.stderr.read_text()
        warnings = [line for line in check.stderr.read_text().splitlines() if line.startswith("warning")]
        assert warnings == [f"warning: {run / LOCK_FILE} was left by process {victim.pid} on {socket.gethostname()}, "
                            "which ended without removing it (killed?): this process takes the run folder over"], \
            "a kill never leaves a damaged checkpoint behind, only its lock, which the next process takes over"
        assert read_checkpoint(run).step == step + 2
        assert temporaries(run) == [], "the next save removes the temporaries of killed processes"
        step += 2
    return left_behind


@pytest.mark.slow
def test_sigkill_at_random_moments_always_leaves_a_resumable_checkpoint(tmp_path, launcher, capsys):
    """Victims save every step and are killed at random; two runs at a time, so that both cores work."""
    with ThreadPoolExecutor(CHAINS) as pool:
        chains = [pool.submit(kill_and_resume, tmp_path / f"run{chain}", random.Random(SEED + chain), KILLS // CHAINS,
                              launcher) for chain in range(CHAINS)]
        left = [kill for chain in chains for kill in chain.result()]
    with capsys.disabled():
        print(f"\n{len(left)} SIGKILLs: {sum('.tmp-' in kill for kill in left)} left a half-written checkpoint folder "
              f"(killed mid-save), {sum('.old-' in kill for kill in left)} a checkpoint being deleted; all resumed")


def test_temporary_folders_are_ignored_and_removed_by_the_next_save_of_another_process(tmp_path):
    run = ganforge.train(out=tmp_path / "run", steps=2, show_progress=False, **TINY_RUN).run_dir
    folder = run / "checkpoints"
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    killed_save = folder / f".step_0000003.tmp-{dead.pid}"
    shutil.copytree(folder / "step_0000002", killed_save)
    (killed_save / "state.json").unlink()
    killed_delete = folder / f".step_0000001.old-{dead.pid}"
    killed_delete.mkdir()
    live_save = folder / f".step_0000003.tmp-{os.getppid()}"  # a save in progress in a live process
    live_save.mkdir()
    assert [p.name for p in list_checkpoints(run)] == ["step_0000001", "step_0000002"]
    assert find_checkpoint(run) == folder / "step_0000002"

    ganforge.resume(run, steps=3, show_progress=False)
    assert not killed_save.exists() and not killed_delete.exists()
    assert live_save.exists(), "a live process's save is left alone"
    assert [p.name for p in list_checkpoints(run)] == ["step_0000001", "step_0000002", "step_0000003"]


def test_a_failed_or_interrupted_save_leaves_no_temporary_folder(tmp_path, monkeypatch):
    run = ganforge.train(out=tmp_path / "run", steps=2, show_progress=False, **TINY_RUN).run_dir
    before = snapshot(run / "checkpoints" / "step_0000002")

    def interrupted(path, data):
        raise KeyboardInterrupt

    monkeypatch.setattr("ganforge.runs.checkpoint._write_synced", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ganforge.resume(run, steps=3, show_progress=False)
    assert temporaries(run) == [] and [p.name for p in list_checkpoints(run)] == ["step_0000001", "step_0000002"]

    def read_only(path, data):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr("ganforge.runs.checkpoint._write_synced", read_only)
    with pytest.raises(CheckpointError, match=r"could not write checkpoint .*step_0000003 \(Permission denied\): "
                                              r"the last good checkpoint .*step_0000002 is intact; make .* writable"):
        ganforge.resume(run, steps=3, show_progress=False)
    assert temporaries(run) == [] and snapshot(run / "checkpoints" / "step_0000002") == before


# --- damaged checkpoints: fall back from a run folder, refuse an explicit folder ----------------------


@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> Path:
    """A toy run with checkpoints at steps 1 and 2; copy it before changing it."""
    return ganforge.train(out=tmp_path_factory.mktemp("good") / "run", steps=2, show_progress=False, **TINY_RUN).run_dir


@pytest.fixture
def run(good_run, tmp_path) -> Path:
    return Path(shutil.copytree(good_run, tmp_path / "run"))


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one_with_a_warning(run, caplog):
    newest, previous = run / "checkpoints" / "step_0000002", run / "checkpoints" / "step_0000001"
    weights = newest / "generator.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])  # a disk failure after the rename
    with caplog.at_level(logging.WARNING, logger="ganforge"):
        assert find_checkpoint(run) == previous
        assert read_checkpoint(run).step == 1
        ganforge.load(run, device="cpu")
    warnings = [record.getMessage() for record in caplog.records if record.name == "ganforge"]
    assert len(warnings) == 1, "one warning per damaged checkpoint, however often it is skipped"
    assert str(weights) in warnings[0] and f"using the previous checkpoint {previous}" in warnings[0]

    with pytest.raises(CheckpointError, match=re.escape(str(weights))):
        read_checkpoint(newest)  # named explicitly: no fallback

    ganforge.resume(run, steps=3, show_progress=False)  # from step 1; its step 2 replaces the damaged one
    assert [p.name for p in list_checkpoints(run)] == ["step_0000001", "step_0000002", "step_0000003"]
    assert read_checkpoint(newest).step == 2 and temporaries(run) == []


def test_a_run_whose_checkpoints_are_all_damaged_is_one_error_naming_the_newest(run):
    for step in (1, 2):
        (run / "checkpoints" / f"step_000000{step}" / "state.json").write_text("{")
    with pytest.raises(CheckpointError) as caught:
        read_checkpoint(run)
    message = str(caught.value)
    assert "step_0000002" in message and "state.json" in message and "no earlier readable checkpoint" in message
    assert "\n" not in message


@pytest.mark.parametrize("name", CHECKPOINT_FILES)
def test_a_truncated_file_is_an_error_naming_it_at_any_length(run, name):
    folder = run / "checkpoints" / "step_0000002"
    path = folder / name
    data = path.read_bytes()
    header_end = 8 + int.from_bytes(data[:8], "little") if name in TENSOR_FILES else 1
    for length in sorted({0, 1, 7, 8, 40, header_end - 1, header_end, len(data) // 2, len(data) - 1}):
        path.write_bytes(data[:length])
        with pytest.raises(CheckpointError) as caught:
            read_checkpoint(folder)
        message = str(caught.value)
        named = str(path) if name in TENSOR_FILES else f"{folder} has a damaged state.json"
        assert named in message, (length, message)
        assert "\n" not in message
        assert read_checkpoint(run).step == 1, "the run folder falls back to the intact checkpoint"


# --- a full disk ---------------------------------------------------------------------------------


def assert_full_disk_handled(run: Path, code: int, stderr: str, before: dict[str, bytes], reason: str) -> None:
    checkpoints = run / "checkpoints"
    one_line_error(code, stderr, f"could not write checkpoint {checkpoints / 'step_0000003'} ({reason})",
                   f"the last good checkpoint {checkpoints / 'step_0000002'} is intact", f"--resume {run}")
    assert temporaries(run) == [], "the half-written folder is removed"
    assert [p.name for p in list_checkpoints(run)] == ["step_0000001", "step_0000002"]
    assert snapshot(checkpoints / "step_0000002") == before, "the last good checkpoint is bit-identical"
    assert read_checkpoint(run).step == 2


@pytest.mark.slow
def test_a_full_disk_file_size_limit_is_one_error_and_keeps_the_last_checkpoint(run, launcher):
    """RLIMIT_FSIZE (SIGXFSZ ignored) makes a write past the limit fail with EFBIG, as a disk that filled up."""
    checkpoint = run / "checkpoints" / "step_0000002"
    before = snapshot(checkpoint)
    sizes = {name: len(data) for name, data in before.items()}
    # Room for the logs and the weights files, not for the optimizer's file, so the save fails half-way.
    limit = max(sizes["generator.safetensors"], sizes["discriminator.safetensors"], sizes["state.json"]) + 4096
    assert limit < sizes["training.safetensors"] and (run / "metrics.jsonl").stat().st_size + 2000 < limit
    check = launcher.start("train", "--resume", run, "--steps", 4, "--quiet", cwd=run.parent, fsize=limit)
    assert_full_disk_handled(run, launcher.wait(check), check.stderr.read_text(), before, "File too large")
    assert ganforge.resume(run, steps=4, show_progress=False).step == 4, "with room again the run continues"


@pytest.fixture
def small_disk(tmp_path):
    """A 512 KiB tmpfs (needs root and mount rights; skipped elsewhere)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", disk], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", "-l", disk], check=True)


def test_a_full_tmpfs_is_one_error_and_keeps_the_last_checkpoint(small_disk, good_run, launcher):
    run = Path(shutil.copytree(good_run, small_disk / "run"))
    before = snapshot(run / "checkpoints" / "step_0000002")
    # Fill the disk, then free 3 pages: room for the two weights files, not for the optimizer's.
    with open(small_disk / "filler", "wb", buffering=0) as filler:
        try:
            while True:
                filler.write(b"\0" * 4096)
        except OSError as error:
            assert error.errno == errno.ENOSPC
        filler.truncate(filler.tell() // 4096 * 4096 - 3 * 4096)
    check = launcher.start("train", "--resume", run, "--steps", 4, "--quiet", cwd=small_disk)
    assert_full_disk_handled(run, launcher.wait(check), check.stderr.read_text(), before, "No space left on device")


# --- safe loading --------------------------------------------------------------------------------


class Exploit:
    """Unpickling this runs a shell command that creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_pickles_are_never_loaded(run, tmp_path, launcher):
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(Exploit(control)))
    assert control.exists(), "the exploit works when unpickled"

    marker = tmp_path / "pwned"
    payload = pickle.dumps(Exploit(marker))
    for name in ("generator.safetensors", "state.json"):
        case = Path(shutil.copytree(run, tmp_path / name))
        shutil.rmtree(case / "checkpoints" / "step_0000001")  # no earlier checkpoint to fall back to
        folder = case / "checkpoints" / "step_0000002"
        (folder / name).write_bytes(payload)
        for path in (folder, case):
            with pytest.raises(CheckpointError, match=re.escape(str(folder)) + ".*" + re.escape(name)):
                read_checkpoint(path)
        process = launcher.start("sample", case, "-n", 4, "--out", tmp_path / "s.npy", cwd=tmp_path)
        one_line_error(launcher.wait(process), process.stderr.read_text(), str(folder), name)

    weights = tmp_path / "generator.pt"
    weights.write_bytes(payload)
    with pytest.raises(CheckpointError, match="is a file.*never loads pickled"):
        ganforge.load(weights, device="cpu")
    process = launcher.start("sample", weights, "-n", 4, "--out", tmp_path / "s.npy", cwd=tmp_path)
    one_line_error(launcher.wait(process), process.stderr.read_text(), str(weights), "never loads pickled")
    assert not marker.exists(), "no payload ran"
    assert not (tmp_path / "s.npy").exists()


@pytest.fixture(scope="module")
def dcgan_run(tmp_path_factory) -> Path:
    """A one-step 28x28 DCGAN run with 4 base filters."""
    return ganforge.train(out=tmp_path_factory.mktemp("dcgan") / "run", steps=1, show_progress=False, model="dcgan",
                          data="digits", image_size=28, width=4, batch_size=8, tensorboard=False).run_dir


@pytest.mark.parametrize("name", ["generator", "discriminator", "training"])
def test_weights_of_another_model_are_an_error_naming_the_mismatch(run, good_run, dcgan_run, tmp_path, launcher, name):
    for step in (1, 2):
        folder = run / "checkpoints" / f"step_000000{step}"
        shutil.copy(dcgan_run / "checkpoints" / "step_0000001" / f"{name}.safetensors", folder / f"{name}.safetensors")
        state = json.loads((folder / "state.json").read_text())
        del state["checksums"]  # as release 0.1.0 wrote it; with checksums the swap is a checksum error first
        (folder / "state.json").write_text(json.dumps(state))
    expected = ("optimizer's state" if name == "training" else
                f"{name}.safetensors does not fit the toy {name} its state.json describes")
    with pytest.raises(CheckpointError, match=re.escape(expected)) as caught:
        ganforge.resume(run, steps=3, show_progress=False)
    assert "another model" in str(caught.value) and "\n" not in str(caught.value)
    if name == "generator":
        toy = ganforge.load(good_run, device="cpu").generator.state_dict()
        dcgan = ganforge.load(dcgan_run, device="cpu").generator.state_dict()
        key = next(key for key in toy if key in dcgan and toy[key].shape != dcgan[key].shape)
        shapes = ("x".join(map(str, dcgan[key].shape)), "x".join(map(str, toy[key].shape)))
        assert f"'{key}' is {shapes[0]} in the file, {shapes[1]} in the model" in str(caught.value), str(caught.value)
        process = launcher.start("sample", run, "-n", 4, "--out", tmp_path / "s.npy", cwd=tmp_path)
        one_line_error(launcher.wait(process), process.stderr.read_text(), expected)


def test_no_torch_load_without_weights_only_in_the_package():
    for path in SOURCE.rglob("*.py"):
        text = path.read_text()
        for match in re.finditer(r"\btorch\.load\(", text):
            depth, end = 1, match.end()
            while depth:
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                end += 1
            assert re.search(r"weights_only\s*=\s*True", text[match.end():end]), f"{path}: {text[match.start():end]}"
        assert not re.search(r"\bpickle\.loads?\(|allow_pickle\s*=\s*True", text), path


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_ends_the_step_saves_and_says_how_to_resume(tmp_path, signum):
    run = tmp_path / "run"
    command = [sys.executable, "-m", "ganforge.cli", "train", *VICTIM_FLAGS, "--checkpoint-every", "1000",
               "--steps", "1000000", "--out", str(run)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment())
    deadline = time.monotonic() + SECONDS
    while not (run / "metrics.jsonl").exists() and time.monotonic() < deadline:  # training has started
        time.sleep(0.1)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=SECONDS)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    checkpoint = read_checkpoint(run)
    assert f"stopped by {signal.Signals(signum).name} at step {checkpoint.step}" in stderr
    assert f"ganforge train --resume {run} --steps 1000000" in stderr
