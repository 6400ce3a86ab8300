"""Writing files and directories atomically: readers see the old version or the whole new one, never a part.

Hand-written: of the installed libraries none writes a whole directory atomically (a checkpoint, a converted model),
and one rename is all it takes.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path, directory: bool = False) -> Iterator[Path]:
    """A fresh path beside `path` to write to, renamed onto `path` when the block ends without an error.

    directory=True makes it an empty directory for the block to fill. If the block fails, or the rename does
    (a directory cannot replace a non-empty one), the temporary file or directory is removed and nothing at
    `path` changes. Concurrent writers each get their own temporary path; the last rename wins.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    if directory:
        temporary.mkdir()
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        else:
            temporary.unlink(missing_ok=True)


def write_text_atomically(path: str | Path, text: str) -> Path:
    """`path` holding `text` (UTF-8), written through `atomic_path`."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)
