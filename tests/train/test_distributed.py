"""Training under torchrun: 2 CPU processes (gloo, 127.0.0.1), a few steps of the tiny configs.

One torchrun job (tests/distributed_worker.py) runs several real ``ganforge train`` commands in turn and
records, per process, the data and noise it drew, the files it wrote and the networks it ended with;
a second job checks that a failing process brings the job down. The sharding itself is also tested
in-process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import ganforge
from conftest import TINY_DCGAN, TINY_TOY
from ganforge.config.schema import DataConfig
from ganforge.data import MixtureData, TensorData, load_data
from ganforge.data.mixtures import mixture_modes, sample_mixture
from ganforge.errors import ConfigError, DataError, DistributedError
from ganforge.runs.checkpoint import list_checkpoints, read_checkpoint

pytestmark = pytest.mark.slow  # each test starts torchrun processes

WORKER = Path(__file__).with_name("distributed_worker.py")
CPU = torch.device("cpu")
STEPS = 4
JOB_TIMEOUT_S = 120  # a job that has not ended by then hangs


def torchrun(*args: str, log_dir: Path | None = None, timeout: float = JOB_TIMEOUT_S) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node 2 ARGS``, one thread per process; per-rank logs in log_dir."""
    logs = ["--log-dir", str(log_dir), "--redirects", "3"] if log_dir else []
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *logs, *args]
    path = os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                          start_new_session=True) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # torchrun and its workers: leave nothing running
            stdout, stderr = process.communicate()
            pytest.fail(f"the torchrun job hung for {timeout} s:\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def config_file(folder: Path, name: str, keys: dict) -> str:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**keys, "seed": 0}))
    return str(path)


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One 2-process job: toy (fresh), toy wgan-gp (fresh), dcgan (resumed from a 1-process checkpoint),
    and toy with a NaN on rank 1 only. Then the dcgan run resumes in this process, under 1."""
    root = tmp_path_factory.mktemp("distributed")
    runs, results, logs = root / "runs", root / "results", root / "logs"
    runs.mkdir()
    dcgan_run = runs / "dcgan"
    ganforge.train(out=dcgan_run, steps=2, show_progress=False, **TINY_DCGAN)  # 1 process: steps 1-2
    spec = {"results": str(results), "watch": str(runs), "runs": [
        {"name": "toy", "argv": ["train", "--config", config_file(root, "toy", TINY_TOY),
                                 "--steps", str(STEPS), "--out", str(runs / "toy")]},
        {"name": "wgan-gp", "argv": ["train", "--config", config_file(root, "wgan", {**TINY_TOY, "loss": "wgan-gp"}),
                                     "--steps", str(STEPS), "--out", str(runs / "wgan-gp")]},
        {"name": "dcgan", "argv": ["train", "--resume", str(dcgan_run), "--steps", str(STEPS)]},
        {"name": "nan", "argv": ["train", "--config", config_file(root, "nan", TINY_TOY), "--steps", str(STEPS),
                                 "--out", str(runs / "nan")], "nan": {"rank": 1, "step": 3}, "expect_failure": True},
    ]}
    (root / "spec.json").write_text(json.dumps(spec))
    started = time.perf_counter()
    finished = torchrun(str(WORKER), str(root / "spec.json"), log_dir=logs)
    assert finished.returncode == 0, finished.stderr[-3000:]
    print(f"2-process job: {time.perf_counter() - started:.1f} s")

    def per_rank(name: str) -> list[dict]:
        ranks = [json.loads((results / name / f"rank{rank}.json").read_text()) for rank in (0, 1)]
        for rank in (0, 1):
            networks = results / name / f"rank{rank}.safetensors"
            ranks[rank]["networks"] = load_file(networks) if networks.exists() else None
        return ranks

    resumed = ganforge.resume(dcgan_run, steps=STEPS + 2, show_progress=False)  # 1 process again: steps 5-6
    return {"root": root, "runs": runs, "results": {name: per_rank(name) for name in ("toy", "wgan-gp", "dcgan", "nan")},
            "logs": {rank: _rank_output(logs, rank) for rank in (0, 1)}, "resumed": resumed}


def _rank_output(logs: Path, rank: int) -> str:
    """Everything a process printed (torchrun --redirects: LOG_DIR/<job>/attempt_0/<rank>/std{out,err}.log)."""
    files = sorted(logs.glob(f"*/attempt_*/{rank}/std*.log"))
    assert files, f"torchrun wrote no logs for rank {rank} under {logs}"
    return "".join(path.read_text() for path in files)


@pytest.mark.parametrize("name", ["toy", "wgan-gp", "dcgan"])
def test_both_processes_end_with_identical_parameters(job, name):
    rank0, rank1 = job["results"][name]
    assert rank0["status"] == rank1["status"] == 0
    parameters = [key for key in rank0["networks"] if not key.split(".")[-1].startswith(("running_", "num_batches"))]
    assert any(key.startswith("generator.") for key in parameters) and any(key.startswith("discriminator.") for key in parameters)
    for key in parameters:
        assert torch.equal(rank0["networks"][key], rank1["networks"][key]), key
    saved = read_checkpoint(job["runs"] / name / "checkpoints" / "step_0000004")  # rank 0 wrote what both hold
    assert saved.step == STEPS
    for key in parameters:
        network, name_in_network = key.split(".", 1)
        assert torch.equal(getattr(saved, network)[name_in_network], rank0["networks"][key]), key


def test_batch_norm_is_trained_under_ddp(job):
    """dcgan has BatchNorm in G and D: its weights are all-reduced like any parameter, its running statistics
    are rank 0's, broadcast before every forward pass (each process then updates them with its own batch)."""
    rank0, rank1 = job["results"]["dcgan"]
    batch_norm = [key for key in rank0["networks"] if key.endswith("running_mean")]
    assert any(key.startswith("generator.") for key in batch_norm) and any(key.startswith("discriminator.") for key in batch_norm)
    saved = read_checkpoint(job["runs"] / "dcgan" / "checkpoints" / "step_0000004")
    for key in batch_norm:
        network, name_in_network = key.split(".", 1)
        assert torch.equal(getattr(saved, network)[name_in_network], rank0["networks"][key]), "rank 0's are saved"


def test_two_processes_of_batch_b_train_like_one_process_of_batch_2b(job, tmp_path):
    """Toy (no BatchNorm): the global batch is the processes' slices of one stream, and DDP averages the
    gradients of the per-process means, so 2 x 32 gives the numbers of 1 x 64 up to float rounding."""
    one = ganforge.train(out=tmp_path / "one", steps=STEPS, show_progress=False, **{**TINY_TOY, "batch_size": 64})
    single = read_checkpoint(one.run_dir)
    rank0 = job["results"]["toy"][0]["networks"]
    for network in ("generator", "discriminator"):
        for key, value in getattr(single, network).items():
            torch.testing.assert_close(rank0[f"{network}.{key}"], value, rtol=0, atol=1e-5)


def test_each_process_draws_its_own_slice_of_one_global_stream(job):
    batch = TINY_TOY["batch_size"]
    toy0, toy1 = job["results"]["toy"]
    modes, std = mixture_modes("ring8")
    points = torch.Generator().manual_seed(0 + 1)  # the data stream's seed is the run's seed + 1
    assert len(toy0["draws"]) == len(toy1["draws"]) == STEPS
    for mine, theirs in zip(toy0["draws"], toy1["draws"], strict=True):
        expected = sample_mixture(modes, std, 2 * batch, points)
        assert torch.equal(torch.tensor(mine), expected[:batch]) and torch.equal(torch.tensor(theirs), expected[batch:])
    noise = torch.Generator().manual_seed(0)
    assert len(toy0["noise"]) == len(toy1["noise"]) == 2 * STEPS  # one draw in D's phase, one in G's, per step
    for mine, theirs in zip(toy0["noise"], toy1["noise"], strict=True):
        expected = torch.randn(2 * batch, 2, generator=noise)
        assert torch.equal(torch.cat([torch.tensor(mine), torch.tensor(theirs)]), expected)


def test_image_shards_are_disjoint_and_continue_the_permutation_of_a_one_process_checkpoint(job):
    """dcgan resumed under 2 processes from a 1-process checkpoint after 2 batches of 8: each process takes
    its half of the next global batches of 16 in the same permutation."""
    dcgan0, dcgan1 = job["results"]["dcgan"]
    stream = load_data(DataConfig(data="digits"), 28, 1, seed=0, device=CPU)
    for _ in range(2):
        stream._next_index(8)
    assert len(dcgan0["draws"]) == len(dcgan1["draws"]) == STEPS - 2
    for mine, theirs in zip(dcgan0["draws"], dcgan1["draws"], strict=True):
        assert not set(mine) & set(theirs)
        assert mine + theirs == stream._next_index(16).tolist()


def test_only_rank_0_writes_the_run_folder_and_prints(job):
    writes = {rank: [line for name in ("toy", "wgan-gp", "dcgan", "nan") for line in job["results"][name][rank]["writes"]]
              for rank in (0, 1)}
    assert writes[1] == []
    written = "\n".join(writes[0])
    for path in ("toy/config.yaml", "toy/metrics.jsonl", "toy/checkpoints/step_0000004", "toy/samples/step_0000004.png",
                 "dcgan/metrics.jsonl", "dcgan/checkpoints/step_0000004"):
        assert str(job["runs"] / path) in written, f"the audit saw rank 0 write {path}"
    assert "run folder:" in job["logs"][0] and "step 4/4" in job["logs"][0]
    # rank 1 prints only the one error of the NaN run, which every process reports
    assert job["logs"][1].strip().splitlines() == ["error: rank 1: " + _nan_message(job)], job["logs"][1]


def _nan_message(job: dict) -> str:
    line = next(line for line in job["logs"][0].splitlines() if line.startswith("error: rank 0: "))
    return line.removeprefix("error: rank 0: ")


def test_a_nan_on_one_process_stops_every_process_at_the_same_step(job):
    nan0, nan1 = job["results"]["nan"]
    assert nan0["status"] == nan1["status"] == 2
    assert "training diverged: d_loss became NaN or infinite at step 3" in _nan_message(job)
    assert not list_checkpoints(job["runs"] / "nan")


def test_a_checkpoint_written_under_2_processes_resumes_under_1(job):
    resumed = job["resumed"]
    assert resumed.step == STEPS + 2
    checkpoint = read_checkpoint(resumed.run_dir)
    assert int(checkpoint.section("data")["position"]) == 2 * 8 + 2 * 16 + 2 * 8  # 1, then 2, then 1 process
    steps = [json.loads(line)["step"] for line in (resumed.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6]
    before = read_checkpoint(resumed.run_dir / "checkpoints" / "step_0000004")
    assert not all(torch.equal(before.generator[k], checkpoint.generator[k]) for k in checkpoint.generator)


def test_a_failing_process_brings_the_job_down_with_its_message(tmp_path):
    spec = {"results": str(tmp_path / "results"), "watch": str(tmp_path), "runs": [
        {"name": "fail", "argv": ["train", "--config", config_file(tmp_path, "toy", TINY_TOY), "--steps", "1000000",
                                  "--out", str(tmp_path / "run")], "fail": {"rank": 1, "step": 3}}]}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    started = time.perf_counter()
    finished = torchrun(str(WORKER), str(tmp_path / "spec.json"), timeout=60)
    assert finished.returncode != 0
    assert "error: rank 1: injected failure on rank 1 at step 3" in finished.stderr
    assert time.perf_counter() - started < 60
    assert not list_checkpoints(tmp_path / "run")


# --- the sharding, in one process -------------------------------------------------------------


def test_shards_of_tensor_data_split_each_global_batch_and_count_epochs_in_global_batches():
    samples = torch.arange(10, dtype=torch.float32).reshape(10, 1)
    whole, first, second = (TensorData(samples, "points", 3, CPU, "ten") for _ in range(3))
    first.shard(0, 2)
    second.shard(1, 2)
    assert first.batches_per_epoch(2) == second.batches_per_epoch(2) == whole.batches_per_epoch(4) == 2
    for _ in range(5):  # crosses epochs: the short last global batch (2 of 10) is dropped alike everywhere
        a, b = first.next_batch(2), second.next_batch(2)
        assert torch.equal(torch.cat([a, b]), whole.next_batch(4))
        assert not set(a.flatten().tolist()) & set(b.flatten().tolist())
    assert first.epoch == second.epoch == whole.epoch == 2
    assert all(torch.equal(first.state_dict()[k], whole.state_dict()[k]) for k in ("order", "position", "epoch"))


def test_shards_of_a_mixture_are_slices_of_the_one_global_stream():
    whole, first, second = (MixtureData("grid25", 5, CPU) for _ in range(3))
    first.shard(0, 2)
    second.shard(1, 2)
    for _ in range(3):
        assert torch.equal(torch.cat([first.next_batch(16), second.next_batch(16)]), whole.next_batch(32))


def test_a_global_batch_larger_than_the_data_names_the_processes():
    data = TensorData(torch.zeros(10, 1), "points", 0, CPU, "ten points")
    data.shard(1, 3)
    with pytest.raises(DataError, match=r"batch size 4 x 3 processes = 12 .*10 samples.*--batch-size 3 or less"):
        data.next_batch(4)


def test_sync_batch_norm_is_refused_on_the_cpu(tmp_path):
    with pytest.raises(ConfigError, match="--sync-batch-norm needs CUDA GPUs"):
        ganforge.train(out=tmp_path / "run", steps=1, device="cpu", sync_batch_norm=True, show_progress=False, **TINY_DCGAN)


def test_a_world_size_without_torchrun_is_one_clear_error(tmp_path, monkeypatch):
    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(DistributedError, match="WORLD_SIZE is 2 but RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT are not"):
        ganforge.train(out=tmp_path / "run", steps=1, show_progress=False, **TINY_TOY)


def test_a_stray_rank_variable_does_not_silence_a_single_process(tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("RANK", "3")
    result = ganforge.train(out=tmp_path / "run", steps=2, show_progress=False, **TINY_TOY)
    assert list_checkpoints(result.run_dir) and (result.run_dir / "metrics.jsonl").is_file()


def test_python_m_ganforge_is_the_ganforge_command():
    finished = subprocess.run([sys.executable, "-m", "ganforge", "train", "--help"], capture_output=True, text=True,
                              timeout=60)
    assert finished.returncode == 0 and "--sync-batch-norm" in finished.stdout
