import pytest
from torch_format import install_fake_torch


@pytest.fixture()
def fake_torch(monkeypatch):
    """`torch`, `torch._utils` and storage classes registered in sys.modules
    (so that pickle can name them) for the test; returns the storage types."""
    return install_fake_torch(monkeypatch)
