"""The contract suite's transports (tests/contract/conftest.py) for the desk's follower: each
test that takes ``pipeline`` runs on the embedded logs and on a real Kafka broker."""

from tests.contract.conftest import pipeline  # noqa: F401  (a fixture, found by its name)
