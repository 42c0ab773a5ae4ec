"""The user side: verified, versioned, crash-consistent installs and cheap updates."""
