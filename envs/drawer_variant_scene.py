"""Scene of SimplerEnv's Google-robot drawer tasks under VARIANT AGGREGATION, on ManiSkill3 / SAPIEN 3.

Faithful to SimplerEnv `scripts/rt1_drawer_variant_agg.sh` on ManiSkill2_real2sim
`OpenDrawerInSceneEnv` / `CustomSceneEnv` (`envs/custom_scenes/{open_drawer_in_scene,base_env}.py`)
without `prepackaged_config`:

- stage `hab2_bench_assets/stages/frl_apartment_stage_simple.glb`, visual only (the drawer tasks load
  the arena without collision), rotated y-up -> z-up by q = (0.707, 0.707, 0, 0) and placed at
  -scene_offset = (1.6616, 3.0337, 0) (the Google robot's default offset);
- no real-image overlay; the plain robot URDF (`urdf_version=None`) with SimplerEnv's robot render
  material (`disable_bad_material=False`: specular 0.9, roughness 0.3);
- lighting `light_mode` None / "brighter" / "darker" (`_setup_lighting_legacy`): ambient 0.3, a
  shadow-casting directional light along (-0.2, 0, -1) of colour 1 / 2 / 0.5, and two fill lights of 0.5
  along (-1, +-1, -0.05);
- cabinet `station_name` mk_station (default) / mk_station2 / mk_station3 at (-0.295, 0, 0.017), joint
  friction 0.05, drive damping 1 (the same pose for every station);
- robot base at the grid's (x, y), facing -x, the same initial arm pose as visual matching; 3 Hz
  control, 513 Hz physics, 113 steps, the same success rules (the task classes are shared).

Episodes are indices of the variant grid (`grid.py`, family "drawer_variant"): `reset(options={"episode": i})`.
A change of variant rebuilds the scene (stage, lights, cabinet) on that reset.

Differences from SimplerEnv that remain: the SAPIEN 3 rasterizer instead of ray tracing (`shader_dir=rt`
in the .sh), so shading, shadows and brightness differ; the joint path and physics as in `drawer_scene.py`.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import sapien
from mani_skill.utils import sapien_utils

from selfflow_robot.envs.assets import check_variant_assets, stage_path, station_path
from selfflow_robot.envs.drawer_scene import DrawerSceneEnv
from selfflow_robot.envs.grid import (
    VARIANT_FAMILY,
    VARIANTS,
    SceneVariant,
    episode_config,
    num_episodes,
    scene_variant,
)

TASK_FAMILY = VARIANT_FAMILY
STAGE_OFFSET = (-1.6616, -3.0337, 0.0)   # CustomSceneEnv default scene_offset for google_robot_static
STAGE_ROTATION = (0.707, 0.707, 0.0, 0.0)  # habitat stages are y-up
# _setup_lighting_legacy
AMBIENT_LIGHT = 0.3
MAIN_LIGHT_DIRECTION = (-0.2, 0.0, -1.0)
MAIN_LIGHT_COLOUR = {"default": 1.0, "brighter": 2.0, "darker": 0.5}
FILL_LIGHTS = (((-1.0, 1.0, -0.05), 0.5), ((-1.0, -1.0, -0.05), 0.5))
ROBOT_SPECULAR, ROBOT_ROUGHNESS = 0.9, 0.3  # set_articulation_render_material when disable_bad_material=False


class DrawerVariantSceneEnv(DrawerSceneEnv):
    """Drawer scene of the variant-aggregation protocol; mix in before an open/close task class.

        class OpenTopDrawerVariantAggEnv(DrawerVariantSceneEnv, OpenTopDrawerEnv): ...

    Reset with `options={"episode": i}` for episode i of the 45-episode variant grid (`grid.py`);
    without it, a random grid episode is drawn from the seeded episode RNG. `overlay` is accepted
    (make_env passes it) and ignored: variant aggregation renders the whole scene.
    """

    task_family = TASK_FAMILY

    def __init__(self, *args, overlay: bool = False, urdf_version: str = "", **kwargs: Any):
        # `overlay` / `urdf_version` are taken out of kwargs and fixed: no overlay, the plain URDF
        self.scene_variant: SceneVariant = VARIANTS[0]
        super().__init__(*args, overlay=False, urdf_version="", **kwargs)

    # ------------------------------------------------------------------ episodes
    def reset(self, seed=None, options: dict | None = None):
        """Reset to variant-grid episode `options["episode"]` (int), or a random one; rebuild on a new variant."""
        options = dict(options or {})
        if "episode" in options:
            index = int(options["episode"])
        else:
            index = int(np.random.default_rng(seed).integers(num_episodes(self.task_family)))
        options["episode"] = index
        variant = scene_variant(episode_config(self.task_family, index).variant)
        if variant != self.scene_variant:
            check_variant_assets(self.asset_root, variant)
            self.scene_variant = variant
            options["reconfigure"] = True
        return super().reset(seed=seed, options=options)

    # ------------------------------------------------------------------ scene
    def _load_lighting(self, options: dict):
        self.scene.set_ambient_light([AMBIENT_LIGHT] * 3)
        c = MAIN_LIGHT_COLOUR[self.scene_variant.light_mode]
        # only the first directional light casts shadows (as in SAPIEN 2)
        self.scene.add_directional_light(list(MAIN_LIGHT_DIRECTION), [c, c, c], shadow=True, shadow_scale=5,
                                         shadow_map_size=2048)
        for direction, colour in FILL_LIGHTS:
            self.scene.add_directional_light(list(direction), [colour] * 3)

    def _load_scene(self, options: dict):
        v = self.scene_variant
        check_variant_assets(self.asset_root, v)
        builder = self.scene.create_actor_builder()
        builder.add_visual_from_file(str(stage_path(self.asset_root, v)), pose=sapien.Pose(q=list(STAGE_ROTATION)))
        builder.initial_pose = sapien.Pose([-x for x in STAGE_OFFSET])
        self.arena = builder.build_static(name="arena")

        self._load_cabinet(station_path(self.asset_root, v))
        for robot in self.agent.robot._objs:
            sapien_utils.set_articulation_render_material(robot, specular=ROBOT_SPECULAR, roughness=ROBOT_ROUGHNESS)
        self._load_objects(options)


__all__ = ["DrawerVariantSceneEnv", "TASK_FAMILY"]
