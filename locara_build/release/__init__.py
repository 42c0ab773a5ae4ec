"""Signed releases: release.json, signatures, provenance, notes, the content-addressed store, publishing."""
