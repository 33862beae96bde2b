"""Run rssr's option checker over whole option folders of BasicSR-based projects (issue 14's measure).

    python tests/data/option_corpus/measure_corpora.py ROOT [-v]

ROOT holds checkouts named ``XPixelGroup+BasicSR``, ``XPixelGroup+HAT``, ``csguoh+MambaIR`` and
``xinntao+Real-ESRGAN``. Every ``options/**/*.yml`` is checked with its data and checkpoint paths
pointed at temporary files (as tests/test_options_corpus.py does). HAT's archs, data and models
are imported from its checkout (its 1.3-era ``rgb2ycbcr`` import is pointed at BasicSR 1.4.2's);
MambaIR's arch and model files are loaded from its checkout with ``mamba_ssm`` stubbed (not
installed; the checker only needs the classes); Real-ESRGAN's package cannot be imported on BasicSR
1.4.2 (its archs are registered there already), so its types resolve to BasicSR's copies
(``RealESRGANModel_basicsr``, ...) as BasicSR's registry does. Prints files accepted / refused per
source with the reasons; ``-v`` also prints the warnings.
"""
import glob
import importlib
import importlib.util
import os
import sys
import tempfile
import types
import warnings
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/
from test_options_corpus import with_temporary_paths  # noqa: E402

from rssr.options import OptionsError, check_options  # noqa: E402

SOURCES = ('XPixelGroup+BasicSR', 'XPixelGroup+HAT', 'csguoh+MambaIR', 'xinntao+Real-ESRGAN')


def register_other_projects(root: str) -> None:
    """Import HAT's and MambaIR's components into BasicSR's registries."""
    import basicsr.utils.color_util as color_util
    import basicsr.utils.matlab_functions as matlab_functions
    matlab_functions.rgb2ycbcr = color_util.rgb2ycbcr
    sys.path.insert(0, os.path.join(root, 'XPixelGroup+HAT'))
    for sub in ('archs', 'data', 'models'):
        for path in sorted(glob.glob(os.path.join(root, 'XPixelGroup+HAT', 'hat', sub, '*_*.py'))):
            importlib.import_module(f'hat.{sub}.{Path(path).stem}')
    interface = types.ModuleType('mamba_ssm.ops.selective_scan_interface')
    interface.selective_scan_fn = interface.selective_scan_ref = None
    sys.modules.update({'mamba_ssm': types.ModuleType('mamba_ssm'), 'mamba_ssm.ops': types.ModuleType('mamba_ssm.ops'),
                        'mamba_ssm.ops.selective_scan_interface': interface})
    for sub in ('archs', 'models'):
        for path in sorted(glob.glob(os.path.join(root, 'csguoh+MambaIR', 'basicsr', sub, 'mambair*.py'))):
            spec = importlib.util.spec_from_file_location(f'mambair_{Path(path).stem}', path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)


def measure(root: str, verbose: bool) -> None:
    for source in SOURCES:
        files = sorted(glob.glob(os.path.join(root, source, 'options', '**', '*.yml'), recursive=True))
        refused = []
        for path in files:
            name = os.path.relpath(path, os.path.join(root, source))
            is_train = '/test/' not in path and not Path(path).name.startswith('test_')
            tmp = Path(tempfile.mkdtemp())
            opt = with_temporary_paths(yaml.safe_load(Path(path).read_text()), tmp)
            (tmp / 'options.yml').write_text(yaml.safe_dump(opt, sort_keys=False))
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter('always')
                try:
                    check_options(str(tmp / 'options.yml'), is_train=is_train)
                except OptionsError as err:
                    refused.append((name, str(err).split(': ', 2)[-1]))
            if verbose:
                for warning in caught:
                    print(f'  warning {name}: {str(warning.message).split(": ", 2)[-1]}')
        print(f'{source}: {len(files)} files, {len(files) - len(refused)} accepted, {len(refused)} refused')
        for name, reason in refused:
            print(f'  refused {name}: {reason}')


if __name__ == '__main__':
    register_other_projects(sys.argv[1])
    measure(sys.argv[1], '-v' in sys.argv)
