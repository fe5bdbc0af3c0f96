"""Throwaway infrastructure (nats-server, PostgreSQL) for tests and ``make dev``.

Plumbing only: processes, ports and data directories, no Outpost domain knowledge.
"""

from outpost_kit.infra._process import docker_available, free_port
from outpost_kit.infra.nats import NatsServer
from outpost_kit.infra.postgres import PostgresCluster

__all__ = ["NatsServer", "PostgresCluster", "docker_available", "free_port"]
