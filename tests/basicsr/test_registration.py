"""import rssr registers into BasicSR idempotently and never shadows BasicSR's names."""
import importlib

import pytest


def test_import_twice_is_harmless():
    import rssr
    importlib.reload(importlib.import_module('rssr.basicsr.registration')).register_all()
    rssr.basicsr.registration.register_all()


def test_conflict_names_both_objects():
    import rssr
    from basicsr.utils.registry import LOSS_REGISTRY
    from rssr.basicsr.registration import RegistryConflictError, register_all
    from rssr.registry import LOSSES

    class L1Loss:  # a different object under BasicSR's own name
        pass

    LOSSES._objects['L1Loss'] = L1Loss
    try:
        with pytest.raises(RegistryConflictError, match=r"L1Loss.*basicsr\.losses.*test_registration"):
            register_all()
    finally:
        del LOSSES._objects['L1Loss']
    assert LOSS_REGISTRY.get('L1Loss').__module__.startswith('basicsr')
