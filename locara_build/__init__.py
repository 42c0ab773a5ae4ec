"""locara-build: ship the newest llama.cpp llama-server every week, on every platform."""

__version__ = "0.1.0"
PRODUCT = "locara-server"  # the name every artifact, release manifest and install prefix carries
