"""Pure decisions: decide(state, command, now) -> events; evolve(state, event) -> state. No I/O."""
