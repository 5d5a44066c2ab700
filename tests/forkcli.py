"""A warm `python -m kexue_runs.cli` for the tests: one server per test worker imports the CLI and its heavy
dependencies once (torch, Hydra, numpy: ~1.8 s), then forks a fresh child for each command line. The child is a
real process (its own pid, exit code, signals: a SIGKILL fault gives -9 as a subprocess would), starts from a
state where no command has run, and writes its stdout and stderr to files. Only the import is shared.

Protocol: one JSON request per line on stdin ({args, cwd, env, timeout}); one JSON reply per line on stdout
({returncode, stdout, stderr} or {timeout: true}). Run as `python tests/forkcli.py`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import time


def child(args: list[str], cwd: str, env: dict, out_path: str, err_path: str) -> None:
    """In the forked child: become `python -m kexue_runs.cli *args` in `cwd` with exactly `env`."""
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, path in ((1, out_path), (2, err_path)):
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(target, fd)
            os.close(target)
        sys.stdout, sys.argv = sys.__stdout__, [sys.executable, *args]
        from kexue_runs import cli

        cli.entry()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def serve() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # the imports the children share (nothing is run): torch._dynamo is what torch.optim imports on its first
    # optimizer (1.5 s), matplotlib.pyplot what the figures need (0.45 s)
    import importlib
    import pkgutil

    import hydra  # noqa: F401
    import matplotlib.pyplot  # noqa: F401
    import torch._dynamo  # noqa: F401

    import kexue_runs.cli  # noqa: F401
    import kexue_runs.experiments

    for module in pkgutil.iter_modules(kexue_runs.experiments.__path__):
        importlib.import_module(f"kexue_runs.experiments.{module.name}")

    protocol = sys.stdout
    sys.stdout = sys.stderr  # nothing but replies on the protocol pipe
    for line in sys.stdin:
        request = json.loads(line)
        tmp = tempfile.mkdtemp(prefix="forkcli-")  # not TemporaryDirectory: its exit hook would run in the child
        try:
            out_path, err_path = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
            protocol.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                child(request["args"], request["cwd"], request["env"], out_path, err_path)
            deadline = time.monotonic() + request["timeout"]
            status = None
            while status is None:
                done, raw = os.waitpid(pid, os.WNOHANG)
                if done:
                    status = raw
                elif time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    break
                else:
                    time.sleep(0.005)
            if status is None:
                reply = {"timeout": True}
            else:
                reply = {"returncode": -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status),
                         "stdout": open(out_path, encoding="utf-8", errors="replace").read(),
                         "stderr": open(err_path, encoding="utf-8", errors="replace").read()}
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        protocol.write(json.dumps(reply) + "\n")
        protocol.flush()


if __name__ == "__main__":
    serve()
