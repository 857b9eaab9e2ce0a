"""A skewed copy of sample rows: what `tfxp drift` must catch (tests/platform/test_drift.py, tests/sample/)."""
import csv

SKEWED = ("trip_miles", "fare", "payment_type")


def skew_csv(src, dst):
    """The rows of ``src`` with longer trips, dearer fares and every payment in cash."""
    with open(src, newline="") as f_in, open(dst, "w", newline="") as f_out:
        reader = csv.DictReader(f_in)
        writer = csv.DictWriter(f_out, fieldnames=reader.fieldnames)
        writer.writeheader()
        for row in reader:
            row["trip_miles"] = str(float(row["trip_miles"] or 0) * 3)
            row["fare"] = str(float(row["fare"] or 0) * 2)
            row["payment_type"] = "Cash"
            writer.writerow(row)
    return str(dst)
