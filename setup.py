"""Packaging for mrrn-keras.

`zoo/` lives at the top level of the repository and is mapped into the
package as `mrrn_keras/zoo` so `load_mrrn` finds its entries from a wheel
as well as from a checkout.
"""

import pathlib

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent


def _zoo_package_data() -> list[str]:
    zoo = HERE / "zoo"
    if not zoo.is_dir():
        return []
    return [str(p.relative_to(zoo)) for p in zoo.rglob("*") if p.is_file()]


setup(
    name="mrrn-keras",
    version="0.1.0",
    description=(
        "Keras 3 / TensorFlow model zoo for MRRN: Multi-Level Recurrent "
        "Residual Networks for action recognition."
    ),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["mrrn_keras", "mrrn_keras.*"])
    + ["mrrn_keras.zoo"],
    package_dir={"mrrn_keras.zoo": "zoo"},
    package_data={
        "mrrn_keras.zoo": _zoo_package_data(),
        "mrrn_keras": ["assets/*"],
    },
    include_package_data=False,
    install_requires=[
        "tensorflow>=2.20,<2.22",
        "keras>=3.10,<4",
        "numpy>=1.26",
        "absl-py>=2.0",
        "av>=12.0",
        "filelock>=3.12",
        "tqdm>=4.60",
        "pillow>=9",
        "matplotlib>=3.7",
        "tensorboard>=2.20,<2.22",
    ],
    extras_require={
        "test": [
            # The second backend the suite runs on (KERAS_BACKEND=jax); CPU wheels.
            "jax>=0.4.30",
            "pytest>=8",
            "pytest-xdist>=3.5",
            "tensorflow-serving-api>=2.20,<2.22",
            # ONNX export (tf2onnx on the LiteRT file) and its check.
            "onnxruntime>=1.20",
            "tf2onnx>=1.17",
            # Writes the safetensors files the ImageNet conversion tests read
            # (the package reads them itself, without it).
            "safetensors>=0.4",
            # Runs .tflite files where TensorFlow is absent (tests block its import).
            "ai-edge-litert>=2.0",
        ],
        # Running exported .tflite files without TensorFlow (JAX/PyTorch machines).
        "litert": ["ai-edge-litert>=2.0"],
        # Test-only: checks the ImageNet weight conversion against torchvision
        # itself (tests/test_imagenet.py) and regenerates its reference
        # (tests/fixtures/make_torchvision_reference.py). CI runs without it.
        "torch": ["torch>=2.4", "torchvision>=0.19", "safetensors>=0.4"],
        # `mrrn export --format onnx` (wheels on PyPI; checked with tf2onnx 1.17,
        # onnx 1.23, onnxruntime 1.32 beside TF 2.21 and NumPy 2.4).
        "onnx": ["tf2onnx>=1.17", "onnx>=1.17", "onnxruntime>=1.20"],
    },
    entry_points={"console_scripts": ["mrrn=mrrn_keras.cli:main"]},
    license="Apache-2.0",
)
