"""Specs: what an operator is served (rendering) and the detached signature over its bytes (signing)."""
