"""Scene-scale inference: tiled, blended, streamed, georeferenced (``python -m rssr.infer``), self-ensemble.

Plain torch and rasterio; the network comes from :func:`rssr.basicsr.loading.load_model` (built as BasicSR
builds it) or from :func:`rssr.create_model`."""
from rssr.errors import InferenceError
from rssr.inference.scene import OutputOptions, TilingOptions, super_resolve_scene
from rssr.inference.self_ensemble import SelfEnsemble, with_self_ensemble

__all__ = ['InferenceError', 'OutputOptions', 'SelfEnsemble', 'TilingOptions', 'super_resolve_scene',
           'with_self_ensemble']
