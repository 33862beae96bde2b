"""Scene-scale inference: tiled, blended, streamed, georeferenced (``python -m rssr.infer``), self-ensemble."""
from rssr.errors import InferenceError
from rssr.inference.loading import load_model
from rssr.inference.scene import OutputOptions, TilingOptions, super_resolve_scene
from rssr.inference.self_ensemble import SelfEnsemble, with_self_ensemble

__all__ = ['InferenceError', 'OutputOptions', 'SelfEnsemble', 'TilingOptions', 'load_model', 'super_resolve_scene',
           'with_self_ensemble']
