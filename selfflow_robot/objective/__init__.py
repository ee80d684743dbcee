"""Flow matching with Dual-Timestep Scheduling, the EMA teacher and the representation loss; samplers."""
from selfflow_robot.objective.batch import FlowBatch, LossOutput
from selfflow_robot.objective.config import ObjectiveConfig
from selfflow_robot.objective.dts import DualTimesteps, dual_timesteps, mask_ratios, single_timestep
from selfflow_robot.objective.ema import EMA
from selfflow_robot.objective.interpolant import interpolate, velocity_target
from selfflow_robot.objective.losses import Objective, SelfFlowObjective, VanillaObjective, build_objective
from selfflow_robot.objective.samplers import sample, time_grid
from selfflow_robot.objective.timesteps import TimeDistribution

__all__ = ["FlowBatch", "LossOutput", "ObjectiveConfig", "DualTimesteps", "dual_timesteps", "mask_ratios",
           "single_timestep", "EMA", "interpolate", "velocity_target", "Objective", "SelfFlowObjective",
           "VanillaObjective", "build_objective", "sample", "time_grid", "TimeDistribution"]
