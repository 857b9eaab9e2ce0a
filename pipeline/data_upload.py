"""`tfxp upload`: copies the TFRecords `tfxp data` wrote to the data_root a Kubeflow config reads.

    tfxp upload                                    # runs/data/chicago_taxi -> kubeflow.yaml's data_root
    tfxp upload --from runs/data/mine --config my-kubeflow.yaml

What is copied: ``<from>/train/*`` and ``<from>/eval/*``, what ImportExampleGen reads and all that
`tfxp data` writes, each to ``<data_root>/<split>/<name>``, through TFX's fileio (the file system
plugin that serves gs://, s3://, hdfs://: any store this environment can write). Each file
appears whole or not at all (tfxp/files.py ``copy_atomically``): on an object store the file is one
object write; on a local or mounted folder it is written under a temporary name beside it and
renamed. Up to 8 files are copied at once.

* A file already there with the same size and not older than the source is skipped (a second upload
  copies nothing; data written again by `tfxp data` is newer, so it is copied again).
* Files in data_root's splits that the source does not have (shards of an earlier `tfxp data
  --shards 4` beside 2 new ones) would be read by ImportExampleGen too: the upload refuses before
  copying anything, unless ``--delete`` removes them (after the copy).
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import os
import threading
import time
from typing import Dict, List, Tuple

from pipeline.input_check import SPLITS, split_files
from tfxp.errors import TfxpError
from tfxp.files import copy_atomically, is_remote, join

log = logging.getLogger(__name__)

THREADS = 8
PROGRESS_SECONDS = 5.0


class UploadError(ValueError, TfxpError):
    """An upload that would copy nothing useful or mix old data in: one line naming the folder."""


@dataclasses.dataclass
class UploadResult:
    source: str
    destination: str
    copied: List[str]
    copied_bytes: int
    skipped: List[str]
    deleted: List[str]
    seconds: float

    def describe(self) -> str:
        text = (f"copied {len(self.copied)} file(s), {_size(self.copied_bytes)}, from {self.source} to "
                f"{self.destination} in {self.seconds:.1f} s")
        if self.skipped:
            text += f"; skipped {len(self.skipped)} already there (same size, not older)"
        if self.deleted:
            text += f"; deleted {len(self.deleted)} the source does not have: {', '.join(self.deleted)}"
        return text


def _size(count: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024


def _same_folder(a: str, b: str) -> bool:
    if is_remote(a) or is_remote(b):
        return a.rstrip("/") == b.rstrip("/")
    return os.path.realpath(a) == os.path.realpath(b)


def _plan(source: str, destination: str) -> Tuple[List[Tuple[str, str]], List[str], List[str]]:
    """(the (source, destination) pairs to copy, the relative names to skip, the destination files to delete)."""
    from tfx.dsl.io import fileio

    copy, skip, extra = [], [], []
    for split, files in split_files(source, what="--from").items():
        names = {os.path.basename(f.rstrip("/")) for f in files}
        for name in sorted(names):
            src, dst = join(source, split, name), join(destination, split, name)
            if fileio.exists(dst):
                there, here = fileio.stat(dst), fileio.stat(src)
                if there.length == here.length and there.mtime_nsec >= here.mtime_nsec:
                    skip.append(f"{split}/{name}")
                    continue
            copy.append((src, dst))
        folder = join(destination, split)
        if fileio.isdir(folder):
            extra += [join(folder, n.rstrip("/")) for n in sorted(fileio.listdir(folder))
                      if not n.endswith("/") and n not in names and not fileio.isdir(join(folder, n))]
    return copy, skip, extra


def upload(source: str, destination: str, *, delete: bool = False) -> UploadResult:
    """Copies ``source``'s train/ and eval/ files into ``destination`` (see the module docstring)."""
    if "YOUR_" in destination:
        raise UploadError(f"data_root {destination} still holds the preset's placeholder: put your bucket in the "
                          f"config (pipeline/configs/kubeflow.yaml), or --set data_root=gs://BUCKET/PATH")
    if _same_folder(source, destination):
        raise UploadError(f"data_root {destination} is the folder being uploaded (--from): upload to the data_root "
                          f"of a Kubeflow config (--config pipeline/configs/kubeflow.yaml)")
    import tensorflow as tf  # its errors: TFX's fileio serves gs:// and s3:// through TensorFlow's file system
    from tfx.dsl.io import fileio

    start = time.monotonic()
    copy, skip, extra = _plan(source, destination)
    if extra and not delete:
        shown = ", ".join(extra[:3]) + (f" and {len(extra) - 3} more" if len(extra) > 3 else "")
        raise UploadError(f"data_root {destination} holds {len(extra)} file(s) in {'/'.join(SPLITS)} that {source} "
                          f"does not ({shown}); ImportExampleGen would read them too: pass --delete to remove them, "
                          f"or upload to another data_root")
    sizes: Dict[str, int] = {src: fileio.stat(src).length for src, _ in copy}
    total, done, done_bytes, last = sum(sizes.values()), 0, 0, time.monotonic()
    lock = threading.Lock()

    def copy_one(pair):
        nonlocal done, done_bytes, last
        try:
            copy_atomically(*pair)
        except (tf.errors.OpError, OSError) as e:  # a bucket's refusal, a full or read-only disk
            reason = (getattr(e, "message", None) or str(e)).splitlines()[0]
            raise UploadError(f"could not copy {pair[0]} to {pair[1]}: {reason} ({done} of "
                              f"{len(copy)} files copied, each whole: run tfxp upload again for the rest)") from None
        with lock:
            done, done_bytes = done + 1, done_bytes + sizes[pair[0]]
            if time.monotonic() - last >= PROGRESS_SECONDS:
                last = time.monotonic()
                log.info("copied %d of %d files (%s of %s) to %s", done, len(copy), _size(done_bytes), _size(total),
                         destination)

    if copy:
        with concurrent.futures.ThreadPoolExecutor(min(THREADS, len(copy))) as pool:
            for future in [pool.submit(copy_one, pair) for pair in copy]:
                future.result()
    for path in extra:  # after the new files are there: a reader never finds a split empty
        fileio.remove(path)
    return UploadResult(source, destination, [dst for _, dst in copy], total, skip,
                        [os.path.basename(p) for p in extra], time.monotonic() - start)
