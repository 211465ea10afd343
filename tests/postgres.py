"""The PostgreSQL cluster of a test session, and a new database for each test that asks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.postgres_cluster import Cluster, running_cluster

__all__ = ["Cluster", "postgres", "state_url"]


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    """A cluster of this test session, started on a free port and removed at its end."""
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture
def state_url(postgres: Cluster) -> str:
    """The superuser's URL of a new, empty database, for one test."""
    return postgres.url_for(postgres.create_database())
