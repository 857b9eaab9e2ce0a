"""`tfxp dev`: edit, save, see. One warm process reruns the pipeline on every save of the user's files.

    tfxp dev [--config FILE] [--set KEY=VALUE ...]       # the loop, until Ctrl-C

In a notebook, the same loop one call at a time (pipeline/dev/session.py):

    from pipeline import dev
    session = dev.start("pipeline/configs/local.yaml")   # the server starts; the lock is taken
    session.iterate()                                     # one iteration: summary printed, Iteration returned
    session.close()

Ctrl-C while waiting for a save stops at once; during an iteration, the components that are running
finish, no other starts, then the loop stops; a second Ctrl-C stops at once (the unfinished executions
are marked CANCELED in MLMD, their outputs and any half-pushed version removed, child processes ended).
Either way the lock is released and the server stopped.
"""
from __future__ import annotations

import os
import signal
import sys
from typing import Optional, Sequence

from serving.options import GRPC_PORT, REST_PORT


WAITING = "waiting for a save of your files (Ctrl-C to stop)"


def start(config: Optional[str] = None, overrides: Sequence[str] = (), *, grpc_port: int = GRPC_PORT,
          rest_port: int = REST_PORT, out=None):
    """A DevSession for a notebook (or any Python caller): call ``iterate()`` after each edit, ``close()`` at the end."""
    from pipeline.config import DEFAULT_CONFIG
    from pipeline.dev.session import DevSession

    return DevSession(config or DEFAULT_CONFIG, overrides, grpc_port=grpc_port, rest_port=rest_port, out=out)


def run_loop(config: str, overrides: Sequence[str] = (), *, grpc_port: int = GRPC_PORT, rest_port: int = REST_PORT,
             once: bool = False) -> int:
    """`tfxp dev`: the first iteration, then one per save, until Ctrl-C (or SIGTERM). ``once``: one iteration."""
    from pipeline.dev.session import DevSession, RestartNeeded

    session = DevSession(config, overrides, grpc_port=grpc_port, rest_port=rest_port)
    interrupts = []

    def on_signal(signum, _frame):
        interrupts.append(signum)
        if session.busy and signum == signal.SIGINT and len(interrupts) == 1:
            session.say("\nstopping after the running components finish (Ctrl-C again to stop at once)")
            session.stop.set()
            return
        if session.busy:
            _stop_now(session)  # does not return
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    restart = None
    try:
        session.say(f"tfxp dev: serving {session.cfg.pipeline_name!r} on {session.endpoints}; watching "
                    f"{len(session.watched_files())} files (the user package {session.cfg.user_package!r}, "
                    f"the schema, the config). Ctrl-C to stop.")
        session.iterate()
        while not once and not session.stop.is_set():
            session.watcher.mark()
            session.say(WAITING)
            changed = session.watcher.wait(session.stop)
            if not changed:
                break
            platform = session.platform_changes(changed)
            if platform:
                restart = f"platform code changed ({', '.join(os.path.relpath(p) for p in platform)})"
                break
            try:
                session.iterate(changed)
            except RestartNeeded as e:
                restart = str(e)
                break
    except KeyboardInterrupt:
        pass
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        session.close()
    if restart:
        session.say(f"{restart}: restarting tfxp dev in a new process")
        os.execv(sys.executable, [sys.executable, "-m", "pipeline.cli"] + sys.argv[1:])
    session.say("tfxp dev stopped: the server is down and the pipeline's lock released.")
    return 0


def _stop_now(session) -> None:
    """The second Ctrl-C: end child processes, leave MLMD and the serving dir consistent, exit."""
    import psutil

    from pipeline import run_guard

    for child in psutil.Process().children(recursive=True):
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    cfg = session.cfg
    cleaned = run_guard.recover_abandoned(cfg.resolved_metadata_path, cfg.pipeline_name, cfg.resolved_pipeline_root,
                                          [cfg.serving_model_dir, cfg.lite_serving_model_dir])
    session.say("stopped at once" + (f"; cleaned up: {'; '.join(cleaned)}" if cleaned else ""))
    sys.stdout.flush()
    os._exit(130)
