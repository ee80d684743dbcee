"""Open the top drawer and place the apple in it (SimplerEnv `google_robot_place_apple_in_closed_top_drawer`).

ManiSkill2_real2sim `PlaceIntoClosedTopDrawerCustomInScene-v0` with `model_ids=baked_apple_v2`: the apple
(density 800, friction 0.5, damping 0.1) is dropped from 0.5 m above z=0.87 at the grid's xy onto the
cabinet top, rotation about x/y locked for the first 0.5 s of settling. Instruction "open top drawer",
then "place apple into top drawer" once the policy terminates or at step 100.
"""
from __future__ import annotations

import sapien
import torch
from mani_skill.utils.registration import register_env
from sapien.physx import PhysxMaterial, PhysxRigidDynamicComponent

from selfflow_robot.envs.drawer_scene import DrawerSceneEnv

APPLE_MODEL = "baked_apple_v2"
APPLE_DENSITY = 800.0           # info_pick_custom_baked_tex_v1.json
APPLE_FRICTION = 0.5
TABLE_HEIGHT = 0.87             # scene_table_height; the apple starts 0.5 m above it
FORCE_ADVANCE_STEP = 100        # force_advance_subtask_time_steps
DRAWER_OPEN_QPOS = 0.05         # success needs the drawer at least this open on subtask 2
MAX_EPISODE_STEPS = 200
# drawer_interior_bottom_collision of mk_station_recolor.urdf: box 0.55 x 0.515 x 0.02
_BOTTOM_HALF_SIZE = (0.275, 0.2575, 0.01)


@register_env("SelfFlowPlaceAppleInClosedTopDrawer-v1", max_episode_steps=MAX_EPISODE_STEPS)
class PlaceAppleInClosedTopDrawerEnv(DrawerSceneEnv):
    """**Task Description:** open the closed top drawer, then pick the apple from the cabinet top and put it in.

    **Randomizations:** none; the 108 visual-matching episodes (3 robot poses x 9 apple positions x 4
    robot colourings) are selected with `reset(options={"episode": i})`.

    **Success Conditions:** on the second subtask ("place apple into top drawer"), the top drawer is at
    least 0.05 m open and the apple has touched the drawer's interior bottom at some step of the episode.
    """

    drawer_id = "top"
    task_family = "apple"
    _contact_offset = 0.005  # ManiSkill2_real2sim: avoid false-positive contacts with other objects

    def _load_objects(self, options: dict) -> None:
        model_dir = self.asset_root / "data" / "custom" / "models" / APPLE_MODEL
        builder = self.scene.create_actor_builder()
        builder.add_multiple_convex_collisions_from_file(
            str(model_dir / "collision.obj"), density=APPLE_DENSITY,
            material=PhysxMaterial(static_friction=APPLE_FRICTION, dynamic_friction=APPLE_FRICTION, restitution=0.0))
        builder.add_visual_from_file(str(model_dir / "textured.glb"))
        builder.initial_pose = sapien.Pose([0.0, 0.0, 1.5])
        self.apple = builder.build(name="apple")
        body = self._apple_body()
        body.linear_damping = 0.1
        body.angular_damping = 0.1
        shapes = [s for s in self.drawer_link._objs[0].collision_shapes
                  if hasattr(s, "half_size") and all(abs(a - b) < 1e-4 for a, b in zip(s.half_size, _BOTTOM_HALF_SIZE))]
        assert len(shapes) == 1, "mk_station_recolor.urdf: expected one drawer interior bottom box"
        self._drawer_bottom_shape = shapes[0]

    def _apple_body(self) -> PhysxRigidDynamicComponent:
        return self.apple._objs[0].find_component_by_type(PhysxRigidDynamicComponent)

    def _green_screen_keep(self) -> list:
        return super()._green_screen_keep() + [self.apple]

    def _initialize_objects(self, options: dict) -> None:
        x, y = self.episode.apple_xy
        self.apple.set_pose(sapien.Pose([x, y, TABLE_HEIGHT + 0.5], [1, 0, 0, 0]))
        body = self._apple_body()
        body.set_locked_motion_axes([False, False, False, True, True, False])
        self._settle(0.5)
        body.set_locked_motion_axes([False] * 6)
        self.apple.set_linear_velocity(torch.zeros(3))
        self.apple.set_angular_velocity(torch.zeros(3))
        self._settle(0.5)
        if float(torch.linalg.norm(self.apple.linear_velocity)) > 1e-3 or float(
                torch.linalg.norm(self.apple.angular_velocity)) > 1e-2:
            self._settle(1.5)
        self.subtask = 0
        self.contact_steps = 0

    # ------------------------------------------------------------------ subtasks
    def step(self, action):
        if int(self.elapsed_steps[0]) >= FORCE_ADVANCE_STEP:
            self.advance_to_next_subtask()
        return super().step(action)

    def advance_to_next_subtask(self) -> None:
        """Switch the instruction to "place apple into top drawer" (policy terminate or step 100)."""
        self.subtask = 1

    def is_final_subtask(self) -> bool:
        return self.subtask == 1

    def get_language_instruction(self) -> str:
        return "open top drawer" if self.subtask == 0 else "place apple into top drawer"

    # ------------------------------------------------------------------ success
    def apple_touches_drawer_bottom(self) -> bool:
        """Non-zero contact impulse between the apple and the top drawer's interior bottom (CPU simulation)."""
        apple_body = self._apple_body()
        for c in self.scene.px.get_contacts():
            if apple_body in c.bodies and self._drawer_bottom_shape in c.shapes:
                impulse = sum((p.impulse for p in c.points), start=torch.zeros(3).numpy())
                if float((impulse ** 2).sum()) ** 0.5 > 1e-6:
                    return True
        return False

    def evaluate(self) -> dict:
        q = self.drawer_qpos
        if not hasattr(self, "subtask"):  # evaluate() during the first reconfiguration
            self.subtask, self.contact_steps = 0, 0
        self.contact_steps += int(self.apple_touches_drawer_bottom())
        success = (self.subtask == 1) & (q >= DRAWER_OPEN_QPOS) & (self.contact_steps >= 1)
        return dict(success=success, drawer_qpos=q, apple_contact_steps=torch.tensor([self.contact_steps]))
