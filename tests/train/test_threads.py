"""--threads: a fixed count is honoured; auto uses the cores other processes leave free, never more, and follows
their load while training (the probe of /proc/stat is mocked here, so the tests do not depend on this machine)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import ganforge
from ganforge.config.validate import parse_threads
from ganforge.errors import ConfigError
from ganforge.runs.metrics_log import read_metrics, training_history
from ganforge.train import threads as threads_module
from ganforge.train.threads import CpuSample, ThreadBudget, free_core_threads, others_load


@pytest.mark.parametrize("given_value, parsed", [("auto", None), (" Auto ", None), (None, None), ("3", 3), (2, 2)])
def test_threads_are_a_count_or_auto(given_value, parsed):
    assert parse_threads(given_value) == parsed


@pytest.mark.parametrize("bad", ["0", "-1", "two", "2.5", 2.0, True, "100000"])
def test_nonsense_thread_counts_are_one_line_errors(bad):
    with pytest.raises(ConfigError, match="--threads must be 'auto' or a number of threads from 1 to 1024"):
        parse_threads(bad)


def test_others_load_is_the_busy_cores_minus_this_process():
    before = CpuSample(busy=10.0, total=40.0, own=1.0, wall=100.0)
    # one second on 2 cores: 2 s of CPU time in all, 1.5 s of it busy, 0.5 s of it this process
    after = CpuSample(busy=11.5, total=42.0, own=1.5, wall=101.0)
    assert others_load(before, after, cores=2) == pytest.approx(1.0)
    idle = CpuSample(busy=10.0, total=42.0, own=1.0, wall=101.0)
    assert others_load(before, idle, cores=2) == 0.0


@pytest.mark.parametrize("others, cores, ceiling, threads", [
    (0.0, 2, 2, 2), (0.2, 2, 2, 2), (0.6, 2, 2, 1), (1.0, 2, 2, 1), (2.0, 2, 2, 1), (0.0, 2, 1, 1),
    (1.0, 8, 8, 7), (3.5, 8, 4, 4), (7.9, 8, 8, 1),
])
def test_auto_takes_the_free_cores_between_one_and_the_ceiling(others, cores, ceiling, threads):
    assert free_core_threads(others, cores, ceiling) == threads


@given(st.floats(0, 64), st.integers(1, 64), st.integers(1, 64))
def test_auto_never_uses_more_threads_than_the_free_cores_or_the_ceiling(others, cores, ceiling):
    chosen = free_core_threads(others, cores, ceiling)
    assert 1 <= chosen <= ceiling
    assert chosen == 1 or chosen <= cores - others + threads_module.SPARE_CORE


class ScriptedLoad:
    """Stands in for /proc/stat: each sample advances one second in which others keep ``load`` cores busy."""

    def __init__(self, cores: int = 2) -> None:
        self.cores, self.load, self.wall, self.busy, self.total = cores, 0.0, 0.0, 0.0, 0.0

    def __call__(self, core_ids) -> CpuSample:
        self.wall += 1.0
        self.total += self.cores
        self.busy += min(self.cores, self.load)
        return CpuSample(self.busy, self.total, own=0.0, wall=self.wall)


@pytest.fixture
def scripted(monkeypatch):
    load = ScriptedLoad()
    monkeypatch.setattr(threads_module, "sample_cpu", load)
    monkeypatch.setattr(threads_module, "usable_cores", lambda: [0, 1])
    monkeypatch.setattr(threads_module.time, "monotonic", lambda: load.wall + 1.0)  # a second after the last look
    monkeypatch.setattr(threads_module, "RECHECK_SECONDS", 0.5)
    torch.set_num_threads(2)
    yield load
    torch.set_num_threads(1)


def test_auto_follows_the_other_processes_and_gives_the_thread_count_back(scripted):
    budget = ThreadBudget(None)
    scripted.load = 1.0  # a busy process beside us
    assert budget.begin() == 1 and torch.get_num_threads() == 1
    scripted.load = 0.0  # it ended
    assert budget.recheck() == 2 and torch.get_num_threads() == 2
    scripted.load = 2.0
    assert budget.recheck() == 1
    torch.set_num_threads(2)
    budget.end()
    assert torch.get_num_threads() == 2, "the count from before the job"


def test_a_fixed_count_is_used_whatever_the_load(scripted):
    scripted.load = 2.0
    with ThreadBudget(2) as budget:
        assert torch.get_num_threads() == 2 and budget.recheck() == 2


def test_auto_with_one_thread_allowed_never_looks(scripted, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.setattr(threads_module, "sample_cpu", lambda cores: pytest.fail("looked at the load"))
    with ThreadBudget(None) as budget:
        assert budget.threads == 1 and not budget.auto


def test_training_uses_the_threads_it_is_given_and_logs_them(tmp_path, tiny_toy):
    run = ganforge.train(out=tmp_path / "run", steps=4, threads=2, show_progress=False, **tiny_toy).run_dir
    assert {row["threads"] for row in training_history(read_metrics(run))} == {2}
    assert torch.get_num_threads() == 1, "the caller's thread count is given back"


def test_auto_training_beside_a_busy_process_uses_the_free_core(tmp_path, tiny_toy, scripted):
    scripted.load = 1.0
    run = ganforge.train(out=tmp_path / "run", steps=4, show_progress=False, **tiny_toy).run_dir
    assert {row["threads"] for row in training_history(read_metrics(run))} == {1}
    assert torch.get_num_threads() == 2
