"""Outpost's contracts: the only code services share (ARCHITECTURE.md decision 1)."""
