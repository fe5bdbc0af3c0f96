"""Adapters: the NATS backend and the identity event follower."""
