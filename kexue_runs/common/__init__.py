"""What every layer may use: user-fixable errors, console output, the run folder's files, cost meters."""
