"""The robot-side client must import with only numpy + msgpack + websockets (SimplerEnv's environment)."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

POLICIES = Path(__file__).resolve().parents[2] / "policies"
ROBOT_SIDE = ("client.py", "control_loop.py")


def _run(code: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_package_import_pulls_no_torch_and_no_other_selfflow_modules():
    r = _run("""
        import sys
        import selfflow_robot.policies.client as c, selfflow_robot.policies.control_loop as cl
        heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'hydra', 'omegaconf', 'safetensors'))
        ours = sorted(m for m in sys.modules if m.startswith('selfflow_robot'))
        print(heavy); print(ours)
        assert not heavy, heavy
        assert set(ours) <= {'selfflow_robot', 'selfflow_robot.policies', 'selfflow_robot.policies.client',
                             'selfflow_robot.policies.control_loop'}, ours
    """)
    assert r.returncode == 0, r.stdout + r.stderr


def test_vendored_copy_imports_with_only_numpy_msgpack_websockets(tmp_path):
    """Copy the two robot-side files alone and import them with every other third-party module blocked."""
    for name in ROBOT_SIDE:
        shutil.copy(POLICIES / name, tmp_path / name)
    r = _run("""
        import sys, importlib.abc
        ALLOWED = set(sys.stdlib_module_names) | {'numpy', 'msgpack', 'websockets', 'client', 'control_loop'}
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] not in ALLOWED:
                    raise ImportError(f'blocked import of {name}')
                return None
        sys.meta_path.insert(0, Block())
        import numpy as np
        import client, control_loop
        import websockets.sync.client, websockets.asyncio.client  # what connect() imports lazily
        msg = client.unpackb(client.packb({'a': np.arange(6, dtype=np.float32).reshape(2, 3)}))
        assert msg['a'].shape == (2, 3)
        b = control_loop.ActionBounds.from_quantiles([-1, 0], [1, 2], margin=0.5)
        assert b.clip(np.array([5.0, -5.0]))[0].tolist() == [2.0, -1.0]
        print('ok')
    """, cwd=tmp_path)
    assert r.returncode == 0 and "ok" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("name", ROBOT_SIDE)
def test_robot_side_modules_parse_as_python_310(name):
    src = (POLICIES / name).read_text()
    ast.parse(src, filename=name, feature_version=(3, 10))
    tree = ast.parse(src)
    top_imports = {a.name.split('.')[0] for node in tree.body if isinstance(node, ast.Import) for a in node.names}
    top_imports |= {node.module.split('.')[0] for node in tree.body
                    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert not top_imports & {"torch", "selfflow_robot"}, top_imports
