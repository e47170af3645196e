"""InTI video models: presets (data), `create_model`, the InTI layer, FLOP counting."""

from inti_export.models.config import ModelConfig, get_config, list_presets
from inti_export.models.factory import create_model
from inti_export.models.video_vit import InTIVideoModel

__all__ = ["InTIVideoModel", "ModelConfig", "create_model", "get_config", "list_presets"]
