"""Backbone (per-token-timestep DiT), its config and size table, frame codecs, checkpoint import."""
from selfflow_robot.model.build import build_model, model_config
from selfflow_robot.model.codecs import FrameCodec, PixelCodec, VAECodec, build_codec
from selfflow_robot.model.config import SIZES, DiTConfig, dit_config
from selfflow_robot.model.dit import SelfFlowDiT
from selfflow_robot.model.import_selfflow import ImportReport, import_selfflow
from selfflow_robot.model.tokens import DiTOutput, PrefixCache

__all__ = ["DiTConfig", "DiTOutput", "PrefixCache", "SelfFlowDiT", "SIZES", "dit_config", "FrameCodec", "PixelCodec",
           "VAECodec", "build_codec", "build_model", "model_config", "ImportReport", "import_selfflow"]
