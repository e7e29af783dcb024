"""The parts of the fast exact path (`conveyor.serve.fast` is the entry point)."""
