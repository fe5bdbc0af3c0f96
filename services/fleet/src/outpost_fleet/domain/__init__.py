"""Pure decisions: decide(state, command, now) -> events; evolve(state, event) -> state; and
the pure planners (effective desired state, profile assignment, pack import, compliance). No I/O."""
