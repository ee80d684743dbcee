"""`selfflow-robot serve` as a process (issue 22, items 7 and 16): out of file descriptors it logs one
line per kind of event instead of a traceback per failed accept(), and a bad device, host or port is
one `error:` line with exit status 2."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from selfflow_robot.cli import main as cli
from selfflow_robot.policies.client import PolicyClient

UPGRADE = (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def test_out_of_file_descriptors_logs_one_line_per_kind(tiny_checkpoint):
    code = textwrap.dedent(f"""
        import resource, sys
        from selfflow_robot.cli import main
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        sys.exit(main(["serve", "ckpt={tiny_checkpoint}", "port=0", "device=cpu", "threads=1", "steps=2"]))
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "SELFFLOW_ROBOT_SERVE_TOKEN": ""})
    held: list[socket.socket] = []
    try:
        for line in proc.stdout:
            m = re.search(r"ws://127\.0\.0\.1:(\d+) ", line)
            if m:
                port = int(m.group(1))
                break
        else:
            pytest.fail("the server exited before listening")
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:  # hold far more connections than the server has descriptors
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=2)
                s.sendall(UPGRADE)
                held.append(s)
            except OSError:
                time.sleep(0.01)
            if len(held) > 200:
                for s in held[:50]:
                    s.close()
                del held[:50]
        for s in held:
            s.close()
        held.clear()
        time.sleep(1.5)  # asyncio retries accept() one second after EMFILE
        with PolicyClient(f"ws://127.0.0.1:{port}") as c:  # and serves again once descriptors are back
            assert c.metadata["chunk_length"] > 0
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        for s in held:
            s.close()
        if proc.poll() is None:
            proc.kill()
    lines = out.splitlines()
    accept_lines = [ln for ln in lines if "socket.accept() out of system resource" in ln]
    assert "Traceback" not in out, out[-3000:]
    assert len(accept_lines) == 1 and "Too many open files" in accept_lines[0], out[-3000:]
    assert proc.returncode == 0 and len(lines) <= 6, out[-3000:]


def _one_error_line(capsys, argv: list[str]) -> str:
    rc = cli(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def test_bad_device_host_or_port_is_one_error_line(tiny_checkpoint, capsys):
    ckpt = f"ckpt={tiny_checkpoint}"
    assert "device='tpu'" in _one_error_line(capsys, ["serve", ckpt, "device=tpu"])
    assert "not an address of this machine" in _one_error_line(capsys, ["serve", ckpt, "host=no-such-host.invalid"])
    assert "not an address of this machine" in _one_error_line(capsys, ["serve", ckpt, "host=192.0.2.1"])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert f"port {port} on 127.0.0.1 is already in use" in _one_error_line(
            capsys, ["serve", ckpt, "device=cpu", f"port={port}"])
    assert "unknown key 'foo'" in _one_error_line(capsys, ["serve", ckpt, "+foo=1"])
    assert "idle_timeout_s must be >= 0" in _one_error_line(capsys, ["serve", ckpt, "idle_timeout_s=-1"])
