"""Sync: which llama.cpp (git, sdist or archive sources, the lock) and the patched tree (patch queue, bisect)."""
