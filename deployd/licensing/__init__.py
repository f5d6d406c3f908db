"""Licenses: vendor-signed JWTs (tokens), the key ring that verifies them, the per-process cache."""
