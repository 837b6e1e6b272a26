import pytest

from kerazoo.testing import randomize_batch_norms


@pytest.fixture
def randomize():
    return randomize_batch_norms
