"""Fixtures of the validation-stage tests: a small real-image dataset (Debian's Fashion-MNIST as an RGB
ImageFolder, built into a temporary folder once per session; never committed)."""

from __future__ import annotations

from pathlib import Path

import pytest

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(scope="session")
def fashion_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<tmp>/train/<class>/*.JPEG`` (10 classes x 100 images) and ``<tmp>/val`` (10 x 30), 32 px RGB."""
    pytest.importorskip("torch")
    if not (FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST not installed: apt-get install -y dataset-fashion-mnist")
    from nasopt.validation.train.prepare import fashion_mnist_folder

    return fashion_mnist_folder(
        tmp_path_factory.mktemp("fashion"), FASHION_MNIST, size=32, train_per_class=100, val_per_class=30
    )
