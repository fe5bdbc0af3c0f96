"""Throwaway infrastructure (nats-server, PostgreSQL) for tests and ``make dev``.

Plumbing only: processes, ports and data directories, no Outpost domain knowledge.
"""

from outpost_devkit.infra._process import docker_available, free_port
from outpost_devkit.infra.nats import NatsServer
from outpost_devkit.infra.postgres import PostgresCluster

__all__ = ["NatsServer", "PostgresCluster", "docker_available", "free_port"]
