"""Files: the one atomic writer, and which paths are remote.

    write_atomically(path, "text")          # str or bytes; readers see the old file or the new one
    copy_atomically(source, path)           # a file of any size, streamed (source and path local or remote)
    with atomic_path(path) as tmp:          # for a library that writes a file itself (pyarrow, shutil)
        shutil.copyfile(src, tmp)

A local file is written to a temporary name in its own directory, flushed to disk (fsync), then
renamed over the destination: a crash leaves the old file or the new one, never half of one, and no
temporary file behind. A remote path (gs://, s3://, ...) is one object write (through TensorFlow's file system, or TFX's fileio
for copies; imported only then), which object stores make atomic themselves.
"""
from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import tempfile
from typing import Iterator, Optional, Union


def is_remote(path: str) -> bool:
    """gs://, s3://, hdfs://...: a path TensorFlow's file system (and TF Serving) reads, not the local disk."""
    return "://" in path


def join(path: str, *parts: str) -> str:
    """``path``/``parts``: with '/' for a remote path (gs://bucket/a/b), the local separator otherwise."""
    return posixpath.join(path, *parts) if is_remote(path) else os.path.join(path, *parts)


def write_atomically(path: str, data: Union[str, bytes], mode: int = 0o644) -> None:
    """Writes ``data`` (text as UTF-8) to ``path``, creating its directory; see the module docstring."""
    if is_remote(path):
        import tensorflow as tf

        tf.io.gfile.makedirs(os.path.dirname(path))
        with tf.io.gfile.GFile(path, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
        return
    with atomic_path(path, mode) as tmp:
        with open(tmp, "wb" if isinstance(data, bytes) else "w", encoding=None if isinstance(data, bytes) else "utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def copy_atomically(source: str, path: str) -> None:
    """Copies the file ``source`` to ``path``, creating its directory; see the module docstring. Either may be
    remote: then through TFX's fileio (``tfx.dsl.io.fileio``, whichever file system plugin serves the scheme:
    gs://, s3://, hdfs://), as TFX's own components copy artifacts. The bytes are streamed, never held whole."""
    if is_remote(path):
        from tfx.dsl.io import fileio

        fileio.makedirs(os.path.dirname(path))
        fileio.copy(source, path, overwrite=True)
        return
    with atomic_path(path) as tmp:
        if is_remote(source):
            from tfx.dsl.io import fileio

            fileio.copy(source, tmp, overwrite=True)
        else:
            shutil.copyfile(source, tmp)
        with open(tmp, "rb") as f:  # on disk before the rename, as write_atomically
            os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_path(path: str, mode: int = 0o644, temporary: Optional[str] = None) -> Iterator[str]:
    """A temporary local path beside ``path``: write it inside the block; on success it replaces ``path``
    (renamed, so readers never see it half-written), on an error it is removed. ``temporary``: a name the
    file's format fixes for it (request logs: ``<name>.tmp``, created by the caller) instead of a random one."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    if temporary is not None:
        tmp = temporary
    else:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
        os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
