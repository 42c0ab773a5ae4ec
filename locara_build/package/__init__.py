"""One deterministic archive per recipe: closure, UI, launchers, licenses, SBOM, model manifest."""
