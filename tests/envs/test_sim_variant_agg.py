"""Drawer variant aggregation: grid layout, manifest, and the scene rendered on CPU (stage, lights, cabinets)."""
from pathlib import Path

import numpy as np
import pytest

from selfflow_robot.envs import grid
from selfflow_robot.envs.asset_manifest import FILES, VARIANT_AGG_EXTRA_FILES
from selfflow_robot.envs.assets import AssetsMissingError, check_variant_assets, missing_variant_files, variant_files
from selfflow_robot.envs.tasks import SUITES, TASKS, suite_protocol
from selfflow_robot.errors import ConfigError

TABLETOP = "data/custom/models/stone_tabletop.glb"
BLUE = (0, 0, 255, 255)


def test_variant_grid_matches_the_simpler_script():
    assert grid.num_episodes("drawer_variant") == 45
    assert grid.VARIANT_NAMES == ("base", "brighter", "darker", "mk_station2", "mk_station3")
    e = grid.episode_config("drawer_variant", 2 * 9 + 5)       # darker, x index 1, y index 2
    assert (e.variant, e.urdf_version, e.overlay_id, e.robot_yaw) == ("darker", "", "", 0.0)
    assert e.robot_xy == pytest.approx((0.75, 0.2))
    assert grid.episode_config("drawer_variant", 0).robot_xy == pytest.approx((0.65, -0.2))
    assert grid.episode_config("drawer_variant", 44).robot_xy == pytest.approx((0.85, 0.2))
    assert grid.episode_config("drawer_variant", 44).robot_quat_wxyz == pytest.approx((0, 0, 0, 1), abs=1e-12)
    assert grid.variant_episodes("mk_station2") == list(range(27, 36))
    assert grid.scene_variant("mk_station3").station_name == "mk_station3"
    with pytest.raises(IndexError):
        grid.episode_config("drawer_variant", 45)
    # the visual-matching grid is unchanged
    assert grid.num_episodes("drawer") == 36 and grid.episode_config("drawer", 4).variant == ""


@pytest.mark.parametrize("name", ["modern_bedroom_no_roof", "modern_office_no_roof"])
def test_background_variants_say_why_they_are_missing(name):
    with pytest.raises(ConfigError, match=f"{name}.glb, which is not in the ManiSkill2_real2sim asset copy"):
        grid.scene_variant(name)
    with pytest.raises(ConfigError, match="did you mean 'darker'"):
        grid.scene_variant("darkr")


def test_variant_tasks_and_suite():
    suite = SUITES["drawer_variant_agg"]
    assert len(suite) == 6 and all(TASKS[t].num_episodes == 45 for t in suite)
    assert TASKS["close_bottom_drawer_variant_agg"].env_id == "SelfFlowCloseBottomDrawerVariantAgg-v1"
    assert TASKS["open_top_drawer_variant_agg"].simpler_name == "OpenTopDrawerCustomInScene-v0"
    assert suite_protocol("drawer_variant_agg") == "variant_aggregation"
    assert suite_protocol("drawer_visual_matching") == "visual_matching"
    assert len(SUITES["drawer_visual_matching"]) == 6


def test_manifest_lists_every_variant_file(asset_root):
    root = Path(asset_root)
    for v in grid.VARIANTS:
        for p in variant_files(root, v):
            rel = str(p.relative_to(root))
            assert rel in FILES or rel in VARIANT_AGG_EXTRA_FILES, rel
    assert TABLETOP in {str(p.relative_to(root)) for p in variant_files(root, grid.scene_variant("mk_station3"))}
    if not (root / TABLETOP).is_file():   # the shared copy: everything but mk_station3's tabletop mesh
        assert missing_variant_files(root, grid.scene_variant("mk_station3")) == [TABLETOP]
    for v in grid.VARIANT_NAMES[:4]:
        assert missing_variant_files(root, grid.scene_variant(v)) == []


def _link_tree(src: Path, dst: Path, skip: set[str]) -> None:
    """Mirror `src` into `dst` with symlinks, descending only into the folders named in `skip`."""
    dst.mkdir(parents=True, exist_ok=True)
    for p in src.iterdir():
        rel = p.relative_to(src)
        if p.name in skip and p.is_dir():
            _link_tree(p, dst / rel, skip)
        else:
            (dst / rel).symlink_to(p)


@pytest.fixture(scope="module")
def full_root(asset_root, tmp_path_factory) -> Path:
    """An asset root with every variant file: the given copy, plus (if it lacks it) a blue box, made here with
    trimesh, as mk_station3's tabletop mesh (the 250 KB upstream file is not in the shared copy)."""
    root = Path(asset_root)
    if (root / TABLETOP).is_file():
        return root
    trimesh = pytest.importorskip("trimesh")
    out = tmp_path_factory.mktemp("assets")
    _link_tree(root, out, {"data", "custom", "models"})
    box = trimesh.creation.box(extents=(0.63, 0.615, 0.02))
    box.visual = trimesh.visual.TextureVisuals(material=trimesh.visual.material.PBRMaterial(
        baseColorFactor=BLUE, metallicFactor=0.0, roughnessFactor=0.8))
    box.export(out / TABLETOP)
    return out


@pytest.fixture(scope="module")
def env(sim, full_root):
    e = sim.make_env("open_top_drawer_variant_agg", asset_root=str(full_root))
    yield e
    e.close()


def _render(env, sim, episode: int) -> tuple[np.ndarray, np.ndarray]:
    camera = pytest.importorskip("selfflow_robot.envs.google_robot").CAMERA_NAME   # a simulator-only module
    obs, _ = env.reset(options={"episode": episode})
    seg = obs["sensor_data"][camera]["segmentation"][0, ..., 0].cpu().numpy()
    return sim.overhead_rgb(obs), seg


def _ids(actors) -> np.ndarray:
    return np.unique(np.concatenate([np.asarray(a.per_scene_id).reshape(-1) for a in actors]))


def test_reset_step_shapes_and_the_stage_is_rendered(sim, env, asset_root):
    u = env.unwrapped
    img, seg = _render(env, sim, 4)                        # base, robot at (0.75, 0.0)
    assert img.shape == (512, 640, 3) and img.dtype == np.uint8
    assert u.get_language_instruction() == "open top drawer" and u.scene_variant.name == "base"
    assert u.episode.robot_xy == pytest.approx((0.75, 0.0))
    assert np.allclose(u.agent.robot.pose.p.numpy().reshape(-1)[:2], (0.75, 0.0), atol=1e-6)
    obs, _, _, _, info = env.step(np.zeros(7, np.float32))
    assert sim.overhead_rgb(obs).shape == (512, 640, 3)
    assert not bool(info["success"][0]) and float(info["drawer_qpos"][0]) == pytest.approx(0.0, abs=1e-3)
    # the frl_apartment stage fills the background: textured floor and walls, not visual matching's white
    # ground, and not a real overlay image
    stage = np.isin(seg, _ids([u.arena]))
    assert stage.mean() > 0.4
    pixels = img[stage].astype(float)
    assert pixels.mean() < 220 and pixels.std() > 15
    vm = sim.make_env("open_top_drawer", asset_root=asset_root, overlay=False)
    try:
        obs, _ = vm.reset(options={"episode": 31})         # b1 (0.752, 0.009), plain URDF: nearly the same view
        vm_img = sim.overhead_rgb(obs)
    finally:
        vm.close()
    assert vm_img[stage].astype(float).mean() > 240       # white ground where the stage is here
    assert np.abs(vm_img.astype(float) - img).mean() > 30


def test_lighting_variants_change_brightness(sim, env):
    # same robot pose (x 0.75, y 0.0) in base / brighter / darker: the main light's colour is 1 / 2 / 0.5
    means = {}
    for name in ("base", "brighter", "darker"):
        img, seg = _render(env, sim, grid.variant_episodes(name)[4])
        assert env.unwrapped.scene_variant.light_mode == ("default" if name == "base" else name)
        cabinet = np.isin(seg, _ids(env.unwrapped.cabinet.get_links()))
        means[name] = (img.mean(), img[cabinet].mean())
    for k in range(2):
        assert means["brighter"][k] > means["base"][k] + 3 > means["darker"][k] + 6


def test_station_variants_load_and_share_physics(sim, env, full_root, asset_root):
    u = env.unwrapped
    action = np.array([-0.05, 0.02, -0.03, 0.0, 0.05, 0.0, 1.0], np.float32)
    looks, states = {}, {}
    for name in ("base", "mk_station2", "mk_station3"):
        img, seg = _render(env, sim, grid.variant_episodes(name)[4])
        assert u.scene_variant.station_name == ("mk_station" if name == "base" else name)
        assert [j.name for j in u.cabinet.get_active_joints()] == ["top_drawer_joint", "middle_drawer_joint",
                                                                    "bottom_drawer_joint"]
        looks[name] = img[np.isin(seg, _ids(u.cabinet.get_links()))].astype(float).mean(axis=0)
        for _ in range(4):
            env.step(action)
        states[name] = np.concatenate([u.agent.tcp.pose.p.numpy().reshape(-1),
                                       u.cabinet.get_qpos().numpy().reshape(-1)])
    # different cabinet looks (mk_station2's drawers are brown, mk_station3 adds the stone tabletop) ...
    assert np.abs(looks["mk_station2"] - looks["base"]).max() > 5
    assert np.abs(looks["mk_station3"] - looks["base"]).max() > 5
    # ... on the same collision geometry: the same actions give the same motion in every variant
    assert np.allclose(states["mk_station2"], states["base"], atol=1e-4)
    assert np.allclose(states["mk_station3"], states["base"], atol=1e-4)
    if full_root != Path(asset_root):
        # the stand-in tabletop is the blue box: it is rendered on top of the cabinet
        img, _ = _render(env, sim, grid.variant_episodes("mk_station3")[4])
        assert ((img[..., 2] > 150) & (img[..., 0] < 80)).mean() > 0.01
    check_variant_assets(full_root, grid.scene_variant("mk_station3"))


def test_missing_tabletop_mesh_gives_the_fix(sim, env, full_root, asset_root):
    if not Path(asset_root, TABLETOP).is_file():
        with pytest.raises(AssetsMissingError, match="stone_tabletop.glb.*selfflow-robot assets fetch"):
            check_variant_assets(Path(asset_root), grid.scene_variant("mk_station3"))
    if full_root == Path(asset_root):
        pytest.skip("the asset copy has the real tabletop mesh; not removing it")
    u = env.unwrapped
    _render(env, sim, 4)
    mesh = full_root / TABLETOP
    data = mesh.read_bytes()
    mesh.unlink()
    try:
        with pytest.raises(AssetsMissingError, match="variant 'mk_station3' needs data/custom/models/stone_tabletop"):
            env.reset(options={"episode": grid.variant_episodes("mk_station3")[0]})
        assert u.scene_variant.name == "base"             # nothing changed: the env still resets
        _render(env, sim, 5)
    finally:
        mesh.write_bytes(data)
