"""`tfxp run`'s terminal: one line per component from TFX's own log messages, the rest into a file."""
import io
import logging
import os
import subprocess
import sys
import threading

from pipeline import run_log

NODES = ["ImportExampleGen", "Trainer", "evaluator"]


def _progress():
    terminal = io.StringIO()
    progress = run_log.Progress(terminal, NODES)
    logger = logging.getLogger("test_run_log")
    logger.setLevel(logging.INFO)
    logger.addHandler(progress)
    return terminal, progress, logger


def test_each_component_gets_one_line_with_n_of_N_its_state_and_time():
    terminal, progress, logger = _progress()
    try:
        logger.info("Component %s is running.", "ImportExampleGen")
        logger.info("A cached execution %d is used.", 4)
        logger.info("Component %s is finished.", "ImportExampleGen")
        logger.info("Component %s is running.", "Trainer")
        logger.info("Going to run a new execution %d", 5)
        logger.info("Component %s is finished.", "Trainer")
    finally:
        logger.removeHandler(progress)
        progress.close()
    lines = terminal.getvalue().splitlines()
    assert [line.split()[:4] for line in lines] == [["[", "1/3]", "ImportExampleGen", "cached"],
                                                    ["[", "2/3]", "Trainer", "executed"]]


def test_components_running_at_once_in_threads_are_told_apart():
    terminal, progress, logger = _progress()

    def component(node, cached):
        logger.info("Component %s is running.", node)
        if cached:
            logger.info("A cached execution %d is used.", 1)
        logger.info("Component %s is finished.", node)

    try:
        threads = [threading.Thread(target=component, args=(node, node == "evaluator")) for node in NODES[1:]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        assert not any(thread.is_alive() for thread in threads)
    finally:
        logger.removeHandler(progress)
        progress.close()
    states = {line.split()[2]: line.split()[3] for line in terminal.getvalue().splitlines()}
    assert states == {"Trainer": "executed", "evaluator": "cached"}


def test_inside_the_capture_child_processes_and_logs_go_to_the_file_and_progress_to_the_terminal(tmp_path):
    script = f"""
import logging, subprocess, sys
sys.path.insert(0, {os.getcwd()!r})
from pipeline import run_log
logging.basicConfig(level=logging.INFO)
with run_log.captured({str(tmp_path / 'run.log')!r}) as progress:
    progress.track(["A"])
    logging.info("Component A is running.")
    subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('a child process writes\\\\n')"])
    print("printed by a library")
    logging.info("Component A is finished.")
print("after the run")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    log = (tmp_path / "run.log").read_text()
    assert "a child process writes" in log and "Component A is finished." in log
    assert "printed by a library" in log
    assert done.stdout.splitlines()[0].split()[:4] == ["[", "1/1]", "A", "executed"]
    assert done.stdout.splitlines()[1:] == ["after the run"]
    assert "a child process writes" not in done.stdout + done.stderr and "library" not in done.stdout
    assert os.readlink(tmp_path / "latest.log") == "run.log"


def test_verbose_keeps_everything_on_the_terminal_and_pythons_log_also_in_the_file(tmp_path):
    script = f"""
import logging, sys
sys.path.insert(0, {os.getcwd()!r})
from pipeline import run_log
logging.basicConfig(level=logging.INFO)
with run_log.captured({str(tmp_path / 'run.log')!r}, to_terminal=True) as progress:
    progress.track(["A"])
    logging.info("Component A is running.")
    logging.info("a library says something")
    logging.info("Component A is finished.")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "a library says something" in done.stderr
    assert done.stdout.splitlines()[0].split()[:4] == ["[", "1/1]", "A", "executed"]
    assert "a library says something" in (tmp_path / "run.log").read_text()
