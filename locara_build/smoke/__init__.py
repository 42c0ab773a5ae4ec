"""Smoke tests: a real llama-server on 127.0.0.1 serving a tiny model."""
