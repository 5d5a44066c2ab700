"""One module per experiment: `run(cfg, ctx) -> final metrics`, optional `validate(cfg)`."""
