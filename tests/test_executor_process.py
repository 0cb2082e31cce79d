"""``ProcessExecutor``: the executor in a child process, behind the same seam.

Real child processes (``python -m worker.executor.child``) running the scripted executor
(``EXECUTOR=tests.fakes.scripted:build``): what a run returns, its progress, each failure class
crossing with its fields, an interrupt, the child's death, and the child never outliving the
worker's process.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fakes.scripted import ScriptedExecutor, workflow
from tests.proctree import alive
from worker import errors
from worker.config import Settings
from worker.errors import ConfigError, ErrorType, Interrupted, JobFailed, Transient, WorkerBroken
from worker.executor import loading, wire
from worker.executor.base import ExecRequest, Progress
from worker.executor.process import ProcessExecutor
from worker.obs import logs

REPO = Path(__file__).resolve().parent.parent


def settings(tmp_path: Path, executor: str = "tests.fakes.scripted:build") -> Settings:
    return Settings.from_env({"WORK_DIR": str(tmp_path / "work"), "EXECUTOR": executor})


def request(
    tmp_path: Path, job_id: str = "j1", progress: object = None, **script: object
) -> ExecRequest:
    folder = tmp_path / job_id
    (folder / "in").mkdir(parents=True)
    (folder / "out").mkdir()
    return ExecRequest(job_id, workflow(**script), folder / "in", folder / "out", progress)  # type: ignore[arg-type]


@pytest.fixture
def executor(tmp_path: Path):  # type: ignore[no-untyped-def]
    ex = ProcessExecutor(settings(tmp_path))
    ex.start()
    yield ex
    ex.close()


def test_the_settings_choose_where_the_executor_runs(tmp_path: Path) -> None:
    assert isinstance(loading.load(settings(tmp_path)), ProcessExecutor)
    inside = Settings.from_env(
        {
            "WORK_DIR": str(tmp_path),
            "EXECUTOR": "tests.fakes.scripted:build",
            "EXECUTOR_PROCESS": "0",
        }
    )
    assert type(loading.load(inside)).__name__ == "ScriptedExecutor"


def test_a_wrong_executor_module_is_a_config_error_before_any_process(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape("no module named 'tests.fakes.nothing'")):
        loading.load(settings(tmp_path, "tests.fakes.nothing:build"))


def test_a_run_returns_the_files_the_child_wrote_and_its_progress(
    executor: ProcessExecutor, tmp_path: Path
) -> None:
    seen: list[Progress] = []
    req = request(
        tmp_path, progress=seen.append, sleep_s=0.3, outputs=[{"name": "a/t.txt", "text": "hi"}]
    )
    result = executor.execute(req)
    assert [(f.name, f.kind) for f in result.outputs] == [("a/t.txt", "text")]
    assert result.outputs[0].path == req.output_dir / "a" / "t.txt"
    assert result.outputs[0].path.read_text() == "hi"
    assert result.node_timings == {"1": 0.3}
    assert seen and all(p.job_id == "j1" and p.total == 0.3 for p in seen)
    assert executor.pid is not None and executor.pid != os.getpid()
    # One child for the life of the executor: the next run goes to the same process.
    executor.execute(request(tmp_path, "j2"))
    assert executor.pid is not None and alive(executor.pid)


@pytest.mark.parametrize(
    ("fail", "cls"),
    [("transient", Transient), ("broken", WorkerBroken), ("execution_error", JobFailed)],
)
def test_each_failure_crosses_as_its_own_class(
    executor: ProcessExecutor, tmp_path: Path, fail: str, cls: type[Exception]
) -> None:
    with pytest.raises(cls) as caught:
        executor.execute(request(tmp_path, fail=fail))
    assert type(caught.value) is cls
    if isinstance(caught.value, JobFailed):
        assert caught.value.error_type is ErrorType.EXECUTION_ERROR
        assert caught.value.node_id == "1"
        assert caught.value.to_dict()["message"] == "scripted: execution_error"
    executor.execute(request(tmp_path, "after"))  # the child goes on serving


def test_an_unclassified_exception_is_worker_broken_and_says_what_it_was(
    executor: ProcessExecutor, tmp_path: Path
) -> None:
    with pytest.raises(WorkerBroken, match="unexpected RuntimeError in the executor: scripted"):
        executor.execute(request(tmp_path, fail="crash"))


def test_an_interrupt_reaches_the_run_in_the_child(
    executor: ProcessExecutor, tmp_path: Path
) -> None:
    import threading

    timer = threading.Timer(0.5, executor.interrupt)
    timer.start()
    started = time.monotonic()
    with pytest.raises(Interrupted):
        executor.execute(request(tmp_path, sleep_s=30))
    assert time.monotonic() - started < 5
    executor.interrupt()  # none running: nothing happens
    executor.execute(request(tmp_path, "after"))


@pytest.mark.parametrize(
    ("kind", "said"), [("segv", "killed by SIGSEGV"), ("exit", "exit status 3")]
)
def test_a_child_that_dies_ends_the_run_with_worker_broken(
    executor: ProcessExecutor, tmp_path: Path, kind: str, said: str
) -> None:
    with pytest.raises(
        WorkerBroken, match=f"the executor process ended while running a job: {said}"
    ):
        executor.execute(request(tmp_path, crash=kind))
    executor.close()  # closing a dead child is fine


def build_logging(settings: Settings) -> ScriptedExecutor:
    """``EXECUTOR=tests.test_executor_process:build_logging``: logs one line as it is built."""
    logging.getLogger("tests.child").warning("the executor process says hello")
    return ScriptedExecutor()


def test_the_childs_log_lines_carry_the_workers_fields(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    kept = root.handlers[:], root.level
    logs.setup("INFO", static={"execution": "exec-7", "service": "comfy-http"})
    try:
        ex = ProcessExecutor(settings(tmp_path, "tests.test_executor_process:build_logging"))
        ex.start()
        ex.close()
    finally:
        root.handlers[:], level = kept
        root.setLevel(level)
    lines = [json.loads(x) for x in capfd.readouterr().err.splitlines() if x.startswith("{")]
    said = [x for x in lines if x["message"] == "the executor process says hello"]
    assert len(said) == 1
    assert said[0]["process"] == "executor"
    assert (said[0]["execution"], said[0]["service"]) == ("exec-7", "comfy-http")


def test_start_failures_keep_their_class(tmp_path: Path) -> None:
    for factory, cls in (("build_broken", WorkerBroken), ("build_bad_config", ConfigError)):
        ex = ProcessExecutor(settings(tmp_path, f"tests.fakes.scripted:{factory}"))
        with pytest.raises(cls):
            ex.start()
        ex.close()
        assert ex.pid is not None and not alive(ex.pid)


def test_close_ends_the_child(tmp_path: Path) -> None:
    ex = ProcessExecutor(settings(tmp_path))
    ex.start()
    pid = ex.pid
    assert pid is not None and alive(pid)
    ex.close()
    assert not alive(pid)
    ex.close()  # idempotent


def test_close_while_a_run_holds_the_child_kills_it(tmp_path: Path) -> None:
    """A run that ignores its interrupt would never answer ``close``: the child is killed, and
    the call waiting on that run ends with ``WorkerBroken``."""
    import threading

    ex = ProcessExecutor(settings(tmp_path))
    ex.start()
    pid = ex.pid
    assert pid is not None
    ended: list[BaseException] = []

    def run() -> None:
        try:
            ex.execute(request(tmp_path, sleep_s=60, ignore_interrupt=True))
        except BaseException as exc:
            ended.append(exc)

    waiting = threading.Thread(target=run)
    waiting.start()
    time.sleep(0.5)
    ex.interrupt()  # ignored
    started = time.monotonic()
    ex.close()
    assert time.monotonic() - started < 5 and not alive(pid)
    waiting.join(10)
    assert len(ended) == 1 and isinstance(ended[0], WorkerBroken), ended
    assert "killed by SIGKILL" in str(ended[0])


def test_signals_for_the_worker_do_not_end_a_run_in_the_child(
    executor: ProcessExecutor, tmp_path: Path
) -> None:
    import threading

    assert executor.pid is not None
    pid = executor.pid
    threading.Timer(0.3, os.kill, (pid, signal.SIGTERM)).start()
    threading.Timer(0.4, os.kill, (pid, signal.SIGINT)).start()
    result = executor.execute(request(tmp_path, sleep_s=1.0, outputs=[{"name": "x.txt"}]))
    assert [f.name for f in result.outputs] == ["x.txt"]


def test_the_child_never_outlives_the_workers_process(tmp_path: Path) -> None:
    """The worker's process killed by SIGKILL (no handler runs): its child ends too. That
    process finds the worker through a ``sys.path`` entry, from another working directory: so
    must the child."""
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        sys.path.insert(0, {str(REPO)!r})
        from worker.config import Settings
        from worker.executor.process import ProcessExecutor
        ex = ProcessExecutor(Settings.from_env(
            {{"WORK_DIR": {str(tmp_path)!r}, "EXECUTOR": "tests.fakes.scripted:build"}}))
        ex.start()
        print(ex.pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=tmp_path
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert alive(child)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while alive(child):
        assert time.monotonic() < deadline, "the executor process outlived the worker's"
        time.sleep(0.05)


error_types = st.sampled_from(list(ErrorType))
texts = st.text(max_size=50)


@given(
    error_type=error_types,
    message=texts,
    node_id=st.none() | texts,
    details=st.dictionaries(texts, st.integers() | texts, max_size=3),
    halts=st.booleans(),
    cls=st.sampled_from([JobFailed, errors.Cancelled]),
)
def test_a_job_failure_crosses_with_every_field(
    error_type: ErrorType,
    message: str,
    node_id: str | None,
    details: dict[str, object],
    halts: bool,
    cls: type[JobFailed],
) -> None:
    if cls is errors.Cancelled:
        original: JobFailed = errors.Cancelled(message, halts_worker=halts)
    else:
        original = JobFailed(
            error_type, message, node_id=node_id, details=details, halts_worker=halts
        )
    rebuilt = wire.rebuild(pickle.loads(pickle.dumps(wire.encode(original))))
    assert type(rebuilt) is cls
    assert isinstance(rebuilt, JobFailed)
    assert vars(rebuilt) == vars(original)
    assert rebuilt.to_dict() == original.to_dict()
    assert str(rebuilt) == str(original)


def test_only_the_workers_error_classes_are_rebuilt() -> None:
    for name in ("SystemExit", "Settings", "os", "WorkerErrorX"):
        rebuilt = wire.rebuild((name, ("x",), {}))
        assert type(rebuilt) is WorkerBroken and name in str(rebuilt)
