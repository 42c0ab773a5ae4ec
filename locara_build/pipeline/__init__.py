"""The stages put together: typed records, the stage protocol and driver, weekly, the CI workflow."""
