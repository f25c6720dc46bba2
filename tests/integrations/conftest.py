"""A real Label Studio for the integration tests: installed once into .cache/ls-venv (ls_env.sh), started once
per test session on a throw-away data directory, and stopped at the end.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.integrations.readme import label_studio_start

REPO = Path(__file__).resolve().parents[2]
LS_VENV = REPO / ".cache" / "ls-venv"
USER, PASSWORD, TOKEN = "tailor@example.com", "tailor-test-pw", "tailor-integration-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ls_venv() -> Path:
    t0 = time.monotonic()
    proc = subprocess.run(["bash", str(Path(__file__).with_name("ls_env.sh")), str(LS_VENV)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"could not install Label Studio into {LS_VENV}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    print(f"Label Studio environment ready in {time.monotonic() - t0:.0f} s")
    return LS_VENV


@pytest.fixture(scope="session")
def label_studio(ls_venv, tmp_path_factory):
    data = tmp_path_factory.mktemp("ls-data")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME") and not k.startswith("TAILOR_")}
    # The README's own command (its port made free), so that what it says is what these tests run; the user
    # and token a person would create by signing up come from the environment instead.
    readme_env, args = label_studio_start()
    env.update(readme_env)
    env.update(PATH=f"{ls_venv / 'bin'}:{env.get('PATH', '')}", LABEL_STUDIO_BASE_DATA_DIR=str(data),
               LABEL_STUDIO_USERNAME=USER, LABEL_STUDIO_PASSWORD=PASSWORD, LABEL_STUDIO_USER_TOKEN=TOKEN,
               LATEST_VERSION_CHECK="false", COLLECT_ANALYTICS="false")
    log_path = data / "label-studio.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(ls_venv / "bin" / "label-studio"), *(a.replace("8080", str(port)) for a in args)],
                                cwd=data, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    t0 = time.monotonic()
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"Label Studio exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).json().get("status") == "UP":
                    break
            except (httpx.HTTPError, ValueError):
                pass
            if time.monotonic() - t0 > 240:
                pytest.fail(f"Label Studio did not come up in 240 s:\n{log_path.read_text()[-4000:]}")
            time.sleep(1)
        print(f"Label Studio up in {time.monotonic() - t0:.0f} s")
        with httpx.Client(base_url=url, headers={"Authorization": f"Token {TOKEN}"}, timeout=120) as client:
            yield client
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()




def tasks(ls: httpx.Client, project: int) -> list[dict]:
    body = ls.get("/api/tasks", params={"project": project, "page_size": 100}).raise_for_status().json()
    return body["tasks"] if isinstance(body, dict) else body
