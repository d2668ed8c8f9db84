"""Outputs are written under a temporary name and renamed into place; what a killed
writer left under a temporary name is removed when the same output is written again."""
import os
import signal
import subprocess
import sys
from pathlib import Path

from carbrands import files

ROOT = Path(__file__).resolve().parents[1]

# a writer that is killed (SIGKILL: no clean-up runs) while it writes data/prepared
KILLED_WRITER = """
import sys, time
from pathlib import Path
from carbrands import files
with files.atomic_path(Path(sys.argv[1])) as tmp:
    tmp.mkdir()
    (tmp / "images.npy").write_bytes(b"half")
    print(tmp, flush=True)
    time.sleep(600)
"""


def _leftovers(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name != path.name)


def test_a_killed_writers_temporary_folder_is_removed_by_the_next_write(tmp_path):
    out = tmp_path / "data" / "prepared"
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(out)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    tmp = Path(writer.stdout.readline().strip())
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=60)
    assert tmp.is_dir() and not out.exists()
    assert _leftovers(out) == [tmp.parent.name] and tmp.parent.name.startswith(".prepared.partial-")

    with files.atomic_path(out) as fresh:
        fresh.mkdir()
        (fresh / "images.npy").write_bytes(b"whole")
    assert (out / "images.npy").read_bytes() == b"whole"
    assert _leftovers(out) == []


def test_a_running_writers_temporary_folder_is_left_alone(tmp_path):
    out = tmp_path / "metrics.json"
    with files.atomic_path(out) as mine:   # this process's own, still being written
        mine.write_text('{"a": 1}')
        assert files.remove_stale_temporaries(out) == [] and mine.is_file()
    assert files.read_json(out) == {"a": 1} and _leftovers(out) == []


def test_a_dead_writers_file_temporary_is_removed(tmp_path):
    out = tmp_path / "metrics.json"
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    stale = tmp_path / f"{files._temporary_prefix(out)}{ended.pid}-abc123"
    stale.mkdir()
    (stale / out.name).write_text("{")
    assert files.remove_stale_temporaries(out) == [stale] and not stale.exists()
