"""Prepares the generated benchmark workload and says what every contender must deliver.

    python3 bench/workload.py SUMMARY.json DIR > expected.json

SUMMARY.json is what `cdr-to-redpanda generate` printed for the files in DIR.

Rows with non-UTF-8 bytes are dropped from the files here: the Python
streamer opens files in text mode, so its first such byte raises
UnicodeDecodeError and it abandons the rest of that file. Kept, they would
leave it streaming a few hundred rows per file, and its throughput would mean
nothing. Every other class of invalid row stays (1% of rows by default).

Prints JSON: files, CSV bytes, rows (all, what the Python streamer sends),
valid data and voice rows and invalid rows (what cdr-to-redpanda sends to
the data, voice and dead-letter topics).
"""

import json
import os
import sys

NON_UTF8 = b"\xff\xfe"


def main():
    summary_path, directory = sys.argv[1], sys.argv[2]
    with open(summary_path) as f:
        summary = json.load(f)
    out = {"files": 0, "bytes": 0, "rows": 0, "valid_data": 0, "valid_voice": 0, "invalid": 0}
    for entry in summary["files"]:
        path = os.path.join(directory, entry["name"])
        with open(path, "rb") as f:
            lines = f.readlines()
        kept = [line for line in lines if NON_UTF8 not in line]
        dropped = len(lines) - len(kept)
        if dropped != entry["invalid_by_class"].get("non_utf8", 0):
            sys.exit(f"{path}: dropped {dropped} lines, the summary says {entry['invalid_by_class']}")
        if dropped:
            with open(path + ".tmp", "wb") as f:
                f.writelines(kept)
            os.replace(path + ".tmp", path)
        rows = entry["rows"] - dropped
        invalid = entry["invalid_rows"] - dropped
        out["files"] += 1
        out["bytes"] += os.path.getsize(path)
        out["rows"] += rows
        out["invalid"] += invalid
        out["valid_" + entry["kind"]] += rows - invalid
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
