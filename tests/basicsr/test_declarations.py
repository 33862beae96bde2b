"""rssr.basicsr.declarations: one documented protocol for what components declare, read through one accessor."""
import rssr  # noqa: F401  (before basicsr: installs its shims)
from rssr.basicsr import declarations
from rssr.basicsr.declarations import OPTIMIZERS_BY_NAME, TOP_LEVEL_OPTION_KEYS, TRAIN_OPTION_KEYS, declared
from rssr.basicsr.models.mambacsr_model import MambaCSRModel
from rssr.basicsr.models.sr_model import OPTIMIZERS, RSSRModel
from rssr.basicsr.options import model_reads


def test_every_declaration_is_documented_and_undeclared_components_get_its_default():
    for declaration in declarations.DECLARATIONS:
        assert declaration.attribute and declaration.set_by and declaration.meaning
        assert declared(object(), declaration) == declaration.default
        assert declared(None, declaration) == declaration.default


def test_models_declare_what_they_read():
    assert declared(RSSRModel, OPTIMIZERS_BY_NAME) is OPTIMIZERS
    assert {'amp', 'grad_accum_steps', 'optim_g'} <= set(declared(RSSRModel, TRAIN_OPTION_KEYS))
    assert {'band_normalization', 'padding_size'} <= set(declared(MambaCSRModel, TOP_LEVEL_OPTION_KEYS))
    assert 'padding_size' in model_reads(MambaCSRModel).known(())
