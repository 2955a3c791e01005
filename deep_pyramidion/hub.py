"""``deep_pyramidion.hub.from_pretrained``: the documented import path of the fairseq adapter's
hub (deep_pyramidion/fairseq_plugin/hub.py), kept so that user code keeps working."""
from deep_pyramidion.fairseq_plugin.hub import PyramidionHubInterface, from_pretrained

__all__ = ["PyramidionHubInterface", "from_pretrained"]
