"""Outpost's development tools, apart from the runtime kit (``outpost_kit``) the images run:
``dev`` (``make dev``'s stack), ``infra`` (throwaway nats-server and PostgreSQL) and
``testing`` (the pytest fixtures). No service's ``src/`` and no runtime kit module imports
this package (``tools/check_boundaries.py``; docs/adr/0087-runtime-kit-apart-from-dev-tools.md).
"""
