"""Two ``medxfer tune`` workers on one study in a real PostgreSQL (a throw-away cluster per session).

The server comes from Debian's ``postgresql`` package (``.ci/run`` installs it): ``initdb`` + ``pg_ctl``
in a temporary folder, listening on a free loopback port with its socket in that folder, trust auth.
initdb refuses to run as root, so as root the cluster belongs to the ``postgres`` (or ``nobody``) user.
Missing binaries: a failure in CI (CI=true), a skip elsewhere.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from test_tune import _files

from medxfer.tuning.study import driver_url


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_owner(user: str | None, cmd: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *cmd] if user else cmd


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """``postgresql://medxfer@127.0.0.1:PORT/postgres`` of a fresh cluster, stopped and removed after."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    user = None
    if os.geteuid() == 0:
        user = next((u for u in ("postgres", "nobody") if _has_user(u)), None)
    missing = [n for n, b in (("initdb", initdb), ("pg_ctl", pg_ctl)) if b is None]
    if os.geteuid() == 0 and (user is None or shutil.which("runuser") is None):
        missing.append("a non-root user + runuser")
    if missing:
        message = f"PostgreSQL test needs {', '.join(missing)} (Debian package `postgresql`)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="medxfer-pg-"))
    if user:
        shutil.chown(root, user)
    data, port = root / "data", _free_port()
    run = lambda cmd: subprocess.run(_as_owner(user, cmd), check=True, capture_output=True, text=True)  # noqa: E731
    try:
        run([initdb, "-D", str(data), "-U", "medxfer", "--auth=trust", "-E", "UTF8", "--no-sync"])
        opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off -c max_connections=50"
        run([pg_ctl, "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "-t", "60", "start"])
        yield f"postgresql://medxfer@127.0.0.1:{port}/postgres"
        run([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"])
    except subprocess.CalledProcessError as exc:
        log = (root / "log").read_text() if (root / "log").is_file() else ""
        pytest.fail(f"PostgreSQL cluster failed: {exc.cmd}: {exc.stderr}\n{log}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def test_driver_url_picks_psycopg3() -> None:
    import importlib.util

    url = driver_url("postgresql://u@h:5/db")
    if importlib.util.find_spec("psycopg2") is None:
        assert url == "postgresql+psycopg://u@h:5/db"
    assert driver_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert driver_url("sqlite:///x.db") == "sqlite:///x.db"


def test_two_workers_share_a_postgresql_study(postgres_url: str, tmp_path: Path) -> None:
    feats, space = _files(tmp_path)
    cmd = [sys.executable, "-m", "medxfer.cli", "tune", "--fast", "--features", str(feats)]
    cmd += ["--space", str(space), "--storage", postgres_url, "--study", "pg", "--trials", "6"]
    cmd += ["--out", str(tmp_path / "out")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [*cmd, "--seed", str(i)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    ran = [re.search(r"ran (\d+) complete, (\d+) pruned", out) for out in outputs]
    assert all(ran), outputs
    assert sum(int(m.group(1)) + int(m.group(2)) for m in ran) == 6  # none counted twice, none lost
    study = optuna.load_study(study_name="pg", storage=driver_url(postgres_url))
    finished = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(finished) == 6 and len({t.number for t in finished}) == 6
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    assert study.best_value == max(t.value for t in finished if t.value is not None)
    assert (tmp_path / "out" / "best_config.yaml").is_file()
