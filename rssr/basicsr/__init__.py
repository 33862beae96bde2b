"""rssr's bridge to BasicSR: compatibility shims and the import hook, registration, the patch table (every
replacement rssr makes inside BasicSR, :mod:`rssr.basicsr.patches`), distributed and CLI start-up, option
checking, network loading by BasicSR's arch names, and the BasicSR model classes. Everything of rssr that imports
basicsr lives here (the package face and the CLIs aside; ``tests/test_import_graph.py`` holds it); lower layers
get what they need from BasicSR passed in by the bridge."""
