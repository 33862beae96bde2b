"""Scene-scale inference: tiled, blended, streamed, georeferenced (``python -m rssr.infer``)."""
from rssr.errors import InferenceError
from rssr.inference.loading import load_model
from rssr.inference.scene import OutputOptions, TilingOptions, super_resolve_scene

__all__ = ['InferenceError', 'OutputOptions', 'TilingOptions', 'load_model', 'super_resolve_scene']
