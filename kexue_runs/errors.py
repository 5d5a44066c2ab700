"""Errors the user can fix: printed as one line, exit code 2, before any work starts."""


class ConfigError(ValueError):
    """A bad override, an unknown experiment or option, or an impossible value."""


class Diverged(RuntimeError):
    """A training metric became NaN or inf."""
