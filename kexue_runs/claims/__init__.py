"""The claim engine: each post's claims as written (catalog), how they are judged (engine, quantiles), and how
the judgment reads (verdicts, report, figures)."""
