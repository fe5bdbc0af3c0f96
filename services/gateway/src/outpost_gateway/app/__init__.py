"""Use-case plumbing: the ports the gateway talks through and its readiness checks."""
