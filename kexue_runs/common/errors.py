"""Errors the user can fix: printed as one line, exit code 2, before any work starts."""


class ConfigError(ValueError):
    """A bad override, an unknown experiment or option, or an impossible value. Its message is one line: control
    characters the user typed (a newline or carriage return inside an argument) are shown escaped."""

    def __init__(self, message: str = "", *args) -> None:
        super().__init__(one_line(str(message)), *args)


def one_line(text: str) -> str:
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


def some_of(names: list[str], near: str = "", shown: int = 8) -> str:
    """A list of allowed values short enough for one line: the closest to `near` first, then a pointer."""
    if len(names) <= shown:
        return ", ".join(names)
    import difflib

    close = difflib.get_close_matches(near, names, n=3, cutoff=0.5) if near else []
    first = close + [n for n in names if n not in close][: shown - len(close)]
    return f"{', '.join(first)}, ... ({len(names)} in all: kexue-run list)"


class Diverged(RuntimeError):
    """A training metric became NaN or inf."""


class EnvironmentFailure(RuntimeError):
    """The machine, not the input: a full or read-only disk, an unwritable folder, a missing optional package."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (what Slurm sends before it kills a job): handled like Ctrl-C, with its own exit code."""


# Exit codes (README "Exit codes"): 0 ok; 1 a run failed or a sweep had failed jobs; 2 bad input; 3 the
# environment failed (disk full, read-only or forbidden folder, missing optional package); 130 Ctrl-C;
# 143 SIGTERM.
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_ENVIRONMENT, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 3, 130, 143
