"""Publishing: saved evidence (canonical sweeps and runs) gathered into the results index and page."""
