"""`tfxp drift`: skew against the training data, or drift between two windows, the TFDV way.

    options.py    the config's drift: section
    inputs.py     the window: request logs, TFRecords of tf.Example, or a CSV
    reference.py  the training statistics of the served model's run (MLMD)
    compare.py    statistics and TFDV's comparators, thresholds from the schema
    verdict.py    the latest verdict, for the run report
    page.py       the HTML page
    check.py      the command's work, end to end

Nothing is imported here: the run report reads verdict.py without loading the rest.
"""
