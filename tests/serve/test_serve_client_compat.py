"""The vendored robot-side client under ANOTHER interpreter (e.g. SimplerEnv's Python 3.10 + numpy 1.x).

Set SELFFLOW_ROBOT_COMPAT_PYTHON to an interpreter that has only numpy, msgpack and websockets, e.g.

    python3.10 -m venv /tmp/py310 && /tmp/py310/bin/pip install "numpy<2" msgpack "websockets<14"
    SELFFLOW_ROBOT_COMPAT_PYTHON=/tmp/py310/bin/python pytest tests/serve/test_serve_client_compat.py

Without it the test is skipped (CI sets it where python3.10 exists).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from selfflow_robot.policies.serving.server import PolicyServer

PYTHON = os.environ.get("SELFFLOW_ROBOT_COMPAT_PYTHON")
POLICIES = Path(__file__).resolve().parents[2] / "policies"


@pytest.mark.skipif(not PYTHON, reason="set SELFFLOW_ROBOT_COMPAT_PYTHON to a numpy-1.x / Python 3.10 interpreter")
def test_vendored_client_in_another_interpreter_drives_the_real_server(engine, tmp_path):
    for name in ("wire.py", "client.py", "control_loop.py"):
        shutil.copy(POLICIES / name, tmp_path / name)
    instr = engine.policy.language.table.instructions[0]
    code = textwrap.dedent(f"""
        import asyncio, sys, numpy as np, websockets
        from client import PolicyClient, AsyncPolicyClient, ServerError
        from control_loop import RecedingHorizonLoop
        assert "torch" not in sys.modules
        img = np.random.default_rng(0).integers(0, 256, (128, 160, 3), dtype=np.uint8)
        with PolicyClient(URI, token="t0k") as c:
            c.reset({instr!r})
            r = c.infer(img)
            assert r["actions"].shape == (c.metadata["chunk_length"], 7), r["actions"].shape
            try:
                c.infer(img.astype(np.float32)); raise SystemExit("no error reply")
            except ServerError as e:
                assert e.code == "bad_request"
            n = []
            stats = RecedingHorizonLoop(c, lambda: img, n.append, control_hz=20).run({instr!r}, 6, False)
            assert stats.steps == len(n) == 6
        async def main():
            c = await AsyncPolicyClient.connect(URI, token="t0k")
            await c.reset({instr!r})
            assert (await c.infer(img))["actions"].shape[1] == 7
            await c.close()
        asyncio.run(main())
        print("ok", sys.version.split()[0], np.__version__, websockets.__version__)
    """)
    with PolicyServer(engine, port=0, token="t0k") as srv:
        r = subprocess.run([PYTHON, "-c", f"URI = {srv.uri!r}\n" + code], cwd=tmp_path, capture_output=True,
                           text=True, timeout=300)
    print(r.stdout)
    assert r.returncode == 0 and "ok" in r.stdout, r.stdout + r.stderr
