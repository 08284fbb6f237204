import pytest

from tests.conftest import FIXTURES
from tests.signing.pki import issue


@pytest.fixture(scope="session")
def cda() -> bytes:
    return (FIXTURES / "cda/crbio_glycemia.xml").read_bytes()


@pytest.fixture(scope="session")
def gateway_rsa():
    return issue("gateway-rsa", algorithm="rsa")


@pytest.fixture(scope="session")
def gateway_ec():
    return issue("gateway-ec")


@pytest.fixture(scope="session")
def sender_ca():
    return issue("Sender CA", ca=True)
