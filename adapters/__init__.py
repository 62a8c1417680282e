"""JITGate."""
