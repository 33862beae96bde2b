"""rssr's version, in a module of its own so that any layer can name it (exported ONNX files carry it)."""
__version__ = '0.1.0'
