"""Postgres plumbing: per-service schema and role, migrations, tenant-scoped units of work,
the event store, the outbox and the inbox."""
