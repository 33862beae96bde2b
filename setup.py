"""rssr: remote-sensing image super-resolution, a BasicSR plugin model zoo."""
from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
requirements = [line.strip() for line in (here / 'requirements.txt').read_text().splitlines()
                if line.strip() and not line.startswith('#')]

setup(
    name='rssr',
    version='0.1.0',
    description='Remote-sensing image super-resolution: faithful ports of published archs as a BasicSR plugin',
    long_description=(here / 'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.9',
    packages=find_packages(include=['rssr', 'rssr.*']),
    package_data={'rssr': ['weights/*.safetensors']},  # shipped demo-grade weights (rssr.weights)
    install_requires=requirements,
    entry_points={'console_scripts': ['rssr-train = rssr.train:main', 'rssr-test = rssr.test:main',
                                      'rssr-infer = rssr.infer:main', 'rssr-info = rssr.info:main',
                                      'rssr-export = rssr.export:main']},
    extras_require={
        'cuda': ['mamba-ssm', 'causal-conv1d', 'triton>=3.2'],  # rssr.ops.scan_triton.MIN_TRITON
        'triton': ['triton>=3.2'],
        'test': ['pytest', 'ruff', 'timm'],  # timm: rssr.layers.mlp is checked against it
        'onnx': ['onnx>=1.16', 'onnxruntime>=1.18', 'onnxscript'],  # rssr.export, rssr.infer --onnx (dynamo exporter)
    },
    classifiers=[
        'License :: OSI Approved :: Apache Software License',
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Image Processing',
    ],
)
