"""One base class for the errors a user can act on (bad config, bad data, a failed component, ...).

`tfxp` catches ``TfxpError`` and prints ``tfxp COMMAND: <outcome>: <message>`` on one line (the
traceback only with --verbose), then exits with the error's ``exit_code``:

    0  done
    1  the work failed: a component failed (PipelineRunError), a model server answered with an error
       or not at all (ServingRequestError)
    2  bad input: a flag, a config value, a file, the data, the user's code (argparse's usage errors
       are 2 as well); also a file that does not exist (FileNotFoundError)
    3  stopped on purpose: the data validation gate found anomalies (AnomaliesFoundError); `tfxp drift`
       found a skew or drift threshold crossed (DriftFoundError)

Each error class keeps its other base (ValueError, RuntimeError) for the code that catches it as
such; its module decides its code here, in the class, not in a list in the CLI.
"""
from __future__ import annotations

BAD_INPUT = 2


class TfxpError(Exception):
    """An error with a message meant for the user: one line naming what to fix."""

    exit_code: int = BAD_INPUT
    outcome: str = "error"  # the word `tfxp` prints before the message
