"""The robot-side client must import with only numpy + msgpack + websockets (SimplerEnv's environment).

The robot side is three files: `wire.py` (the wire format, shared with the server), `client.py` and
`control_loop.py`; they import nothing of ours but each other, as a package or as vendored flat files.
"""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

POLICIES = Path(__file__).resolve().parents[2] / "policies"
ROBOT_SIDE = ("wire.py", "client.py", "control_loop.py")


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
                             'selfflow_robot.policies.control_loop', 'selfflow_robot.policies.wire'}, ours
        # the client speaks the package's one wire format, not a copy of it
        import selfflow_robot.policies.wire as w
        assert c.packb is w.packb and c.unpackb is w.unpackb and c.WireError is w.WireError
    """)
    assert r.returncode == 0, r.stdout + r.stderr


def test_vendored_copy_imports_with_only_numpy_msgpack_websockets(tmp_path):
    """Copy the three robot-side files alone and import them with every other third-party module blocked."""
    for name in ROBOT_SIDE:
        shutil.copy(POLICIES / name, tmp_path / name)
    r = _run("""
        import sys, importlib.abc
        ALLOWED = set(sys.stdlib_module_names) | {'numpy', 'msgpack', 'websockets', 'wire', 'client', 'control_loop'}
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] not in ALLOWED:
                    raise ImportError(f'blocked import of {name}')
                return None
        sys.meta_path.insert(0, Block())
        import numpy as np
        import client, control_loop
        assert 'wire' in sys.modules and client.packb is sys.modules['wire'].packb  # the flat-file fallback
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
    # Anywhere in the file (function bodies, try/except fallbacks): the standard library, numpy, msgpack,
    # websockets, and the other robot-side modules (relative `.wire`, or flat `wire` when vendored).
    siblings = {Path(f).stem for f in ROBOT_SIDE}
    allowed = set(sys.stdlib_module_names) | {"numpy", "msgpack", "websockets"} | siblings
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split('.')[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level in (0, 1), ast.dump(node)
            names = [node.module] if node.module else [a.name for a in node.names]   # `from . import wire`
            if node.level == 1:
                assert set(names) <= siblings, names
            imported |= {n.split('.')[0] for n in names}
    assert imported <= allowed, sorted(imported - allowed)
