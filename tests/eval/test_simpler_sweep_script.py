"""The scripts/simpler/*.sh sweep logic: a failing run is recorded and the sweep goes on, ENVS picks tasks, and the
served policy gets SERVE_STEPS.

SimplerEnv is not installable here, so its side is a stand-in: SIMPLER_PYTHON is a small program that plays the
runner (it fails for one env name and logs the others), and SELFFLOW_ROBOT is a stand-in server that answers
/healthz and records its arguments. What runs for real is the bash of common.sh and the sweep script.
"""
from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SWEEP = REPO / "scripts" / "simpler" / "drawer_visual_matching.sh"

FAKE_RUNNER = """#!{python}
import sys
if sys.argv[1] == "-c":                      # the sweep's /healthz probe: run it for real
    exec(sys.argv[2])
    sys.exit(0)
env = sys.argv[sys.argv.index("--env-name") + 1]
with open({log!r}, "a") as f:
    f.write(env + "\\n")
sys.exit(1 if env == "OpenTopDrawerCustomInScene-v0" else 0)   # as a task whose instruction is unknown
"""

FAKE_SERVER = """#!{python}
import http.server, sys
open({args!r}, "a").write(" ".join(sys.argv[1:]) + "\\n")
port = int(next(a for a in sys.argv if a.startswith("port=")).split("=")[1])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"""


def _script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def _free_port() -> int:

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sweep(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, list[str], str]:
    log, args = tmp_path / "runs.log", tmp_path / "serve_args.log"
    runner = _script(tmp_path / "simpler_python", FAKE_RUNNER.format(python=sys.executable, log=str(log)))
    server = _script(tmp_path / "selfflow_robot", FAKE_SERVER.format(python=sys.executable, args=str(args)))
    (tmp_path / "simpler").mkdir(exist_ok=True)
    full_env = {**os.environ, "SIMPLER_ENV_DIR": str(tmp_path / "simpler"), "SIMPLER_PYTHON": str(runner),
                "SELFFLOW_ROBOT": str(server), "SERVE_PORT": str(_free_port()), "SIMPLER_RAYTRACING": "0",
                "LOGGING_DIR": str(tmp_path / "results"), **env}
    proc = subprocess.run(["bash", str(SWEEP), str(tmp_path / "ckpt")], env=full_env, capture_output=True,
                          text=True, timeout=120)
    runs = log.read_text().splitlines() if log.is_file() else []
    return proc, runs, args.read_text() if args.is_file() else ""


def test_a_failing_task_is_recorded_and_the_sweep_goes_on(tmp_path):
    proc, runs, serve_args = _sweep(tmp_path)
    # 4 URDF colourings x 6 tasks x 9 poses, none skipped after the first failure
    assert len(runs) == 216 and runs.count("OpenTopDrawerCustomInScene-v0") == 36
    failed = [json.loads(line) for line in (tmp_path / "results" / "failed.jsonl").read_text().splitlines()]
    assert len(failed) == 36 and {f["env_name"] for f in failed} == {"OpenTopDrawerCustomInScene-v0"}
    assert proc.returncode == 1 and "36 run(s) failed" in proc.stderr
    assert "steps=1" in serve_args.split()   # the README's results setting unless SERVE_STEPS says otherwise


def test_envs_picks_the_tasks_and_serve_steps_is_passed(tmp_path):
    proc, runs, serve_args = _sweep(tmp_path, ENVS="CloseTopDrawerCustomInScene-v0", SERVE_STEPS="10")
    assert proc.returncode == 0, proc.stderr
    assert set(runs) == {"CloseTopDrawerCustomInScene-v0"} and len(runs) == 36
    assert "steps=10" in serve_args.split()
