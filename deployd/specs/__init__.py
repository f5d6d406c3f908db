"""Specs: what an operator is served (rendering) and the signature over its bytes (signing)."""
