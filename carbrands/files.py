"""Writing outputs safely: to a temporary name first, then renamed into place,
so a killed stage never leaves a half-written file under its final name; and what a
killed stage left under a temporary name is removed when that output is written again."""
from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it onto `path`.

    Works for files and for directories (a directory written to the temporary
    path replaces the old directory as a whole). The temporary folder is named
    `.<name>.partial-<host>-<pid>-<random>`; those of processes of this host that no
    longer run (a killed stage: SIGKILL runs no clean-up) are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = Path(tempfile.mkdtemp(prefix=f"{_temporary_prefix(path)}{os.getpid()}-", dir=path.parent)) / path.name
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}.partial-{socket.gethostname()}-"


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove the temporary folders beside `path` that atomic_path made in processes of
    this host that have ended; returns them. A running writer's (another stage writing
    the same output now) and another host's (a shared disk) are left alone."""
    path = Path(path)
    prefix = _temporary_prefix(path)
    stale = []
    for candidate in map(Path, glob.glob(glob.escape(str(path.parent / prefix)) + "*")):
        pid = candidate.name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(candidate, ignore_errors=True)
            stale.append(candidate)
    return stale


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # another user's process
        return True
    return True


def write_json(path: str | Path, data) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=_jsonable) + "\n")


def read_json(path: str | Path):
    return json.loads(Path(path).read_text())


def write_csv(path: str | Path, frame) -> None:
    """Write a pandas DataFrame as CSV without its index."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _jsonable(value):
    # numpy scalars and arrays appear in metrics; JSON wants plain numbers
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
