"""Visual-matching grid numbers, asset resolution messages, and `assets fetch` against a local HTTP server."""
import hashlib
import http.server
import io
import threading
from functools import partial
from pathlib import Path

import pytest

from selfflow_robot.envs import assets, grid
from selfflow_robot.envs.asset_manifest import FILES


def test_grid_matches_simpler_scripts():
    assert grid.num_episodes("drawer") == 36 and grid.num_episodes("apple") == 108
    e = grid.episode_config("drawer", 9 + 2)          # 2nd URDF, pose a2
    assert (e.urdf_version, e.overlay_id, e.robot_xy, e.robot_yaw) == (
        "recolor_tabletop_visual_matching_1", "a2", (0.889, -0.203), -0.06)
    assert grid.episode_config("drawer", 35).urdf_version == ""          # urdf_version=None last
    a = grid.episode_config("apple", 27 * 3 + 9 * 2 + 3 * 1 + 2)        # plain URDF, c0, x=-0.05, y=0.08
    assert a.overlay_id == "c0" and a.robot_xy == (0.665, 0.224)
    assert a.apple_xy == pytest.approx((-0.05, 0.08))
    w, x, y, z = grid.episode_config("drawer", 0).robot_quat_wxyz     # yaw -0.03 on top of 180 degrees
    assert (x, y) == (0, 0) and w == pytest.approx(0.015, abs=1e-3) and z == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(IndexError):
        grid.episode_config("drawer", 36)


def test_missing_assets_message_says_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv(assets.ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(assets.AssetsMissingError) as e:
        assets.resolve_asset_root()
    msg = str(e.value)
    assert "nowhere" in msg and "selfflow-robot assets fetch" in msg and assets.ENV_VAR in msg
    monkeypatch.delenv(assets.ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(assets.AssetsMissingError, match="download cache"):
        assets.resolve_asset_root()


def test_manifest_matches_the_shared_copy(asset_root):
    root = Path(asset_root)
    for rel in ("data/custom/mk_station_recolor.urdf", "data/real_inpainting/open_drawer_c2.png"):
        sha, size = FILES[rel]
        assert (root / rel).stat().st_size == size and assets.sha256_file(root / rel) == sha
    assert assets.resolve_asset_root(asset_root) == root.resolve()


class _Handler(http.server.SimpleHTTPRequestHandler):
    corrupt: str = ""

    def log_message(self, *args):  # quiet
        pass

    def send_head(self):
        if self.path.lstrip("/") == self.corrupt:  # serve the right length, one byte flipped
            data = bytearray(Path(self.directory, self.corrupt).read_bytes())
            data[len(data) // 2] ^= 0xFF
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            return io.BytesIO(bytes(data))
        return super().send_head()


@pytest.mark.slow
def test_fetch_from_local_server_verifies_checksums(asset_root, tmp_path):
    bad = "data/real_inpainting/open_drawer_b1.png"
    handler = type("H", (_Handler,), {"corrupt": bad})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=asset_root))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(assets.AssetChecksumError, match="open_drawer_b1.png: sha256"):
            assets.fetch_assets(tmp_path, base_url=url, workers=4, progress=False, files=FILES)
        root = assets.cache_root(tmp_path)
        assert not (root / bad).exists()                    # the corrupt download was not kept
        assert (root / "data/custom/mk_station_recolor.urdf").is_file()
        handler.corrupt = ""                                # the server is fixed: fetch resumes
        rep = assets.fetch_assets(tmp_path, base_url=url, workers=4, progress=False, files=FILES)
        assert rep.downloaded == 1 and rep.already_present == len(FILES) - 1
        sha, _ = FILES[bad]
        assert hashlib.sha256((root / bad).read_bytes()).hexdigest() == sha
        assert assets.resolve_asset_root(root) == root.resolve()
        # by default the variant-aggregation extras are fetched too (this server's copy lacks the tabletop mesh)
        with pytest.raises(assets.AssetChecksumError, match="1 of 1 asset files failed.*stone_tabletop.glb"):
            assets.fetch_assets(tmp_path, base_url=url, workers=4, progress=False)
    finally:
        server.shutdown()
