"""atomic_writer: readers see the old file or the whole new one, never a part; no leftovers."""

import os
import stat

import numpy as np
import pytest

from molfm.atomic import TMP_PREFIX, atomic_write_bytes, atomic_write_text, atomic_writer


def _leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(TMP_PREFIX))


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text("old contents\n")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic_writer(path) as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(f"{TMP_PREFIX}table.csv.")
            tmp.write_text("new contents, half writ")
            assert _leftovers(tmp_path) == [tmp.name]  # in flight beside the target
            raise RuntimeError("disk on fire")
    assert path.read_text() == "old contents\n"
    assert _leftovers(tmp_path) == []


def test_interrupted_write_cleans_up_too(tmp_path):
    """A KeyboardInterrupt (not an Exception) must not leave a temporary or a new file."""
    path = tmp_path / "weights.npz"
    with pytest.raises(KeyboardInterrupt):
        with atomic_writer(path) as tmp:
            np.savez(tmp, a=np.arange(3))
            raise KeyboardInterrupt
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_success_replaces_with_a_shared_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("old")
    os.chmod(path, 0o600)
    old_umask = os.umask(0o077)  # even under a strict umask outputs are readable by others
    try:
        with atomic_writer(path) as tmp:
            tmp.write_text("new")
    finally:
        os.umask(old_umask)
    assert path.read_text() == "new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert _leftovers(tmp_path) == []


def test_parent_directories_are_created(tmp_path):
    path = tmp_path / "a" / "b" / "c" / "prompt.txt"
    assert atomic_write_text(path, "CCO \u2192 CCN\n") == path
    assert path.read_text(encoding="utf-8") == "CCO \u2192 CCN\n"
    data = bytes(range(256))
    target = tmp_path / "x" / "blob.bin"
    assert atomic_write_bytes(target, data) == target
    assert target.read_bytes() == data
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert _leftovers(path.parent) == [] and _leftovers(target.parent) == []


def test_helpers_replace_an_existing_file_whole(tmp_path):
    path = tmp_path / "out.txt"
    atomic_write_text(path, "x" * 10_000)
    atomic_write_text(path, "short")
    assert path.read_text() == "short"  # not the old file's tail after a shorter write


def test_libraries_that_read_the_suffix_write_the_target(tmp_path):
    """The temporary keeps the target's suffix: np.savez appends '.npz' to other names (the
    data would land beside an empty target), pandas picks gzip from '.gz'."""
    import pandas as pd

    with atomic_writer(tmp_path / "split.npz") as tmp:
        np.savez(tmp, train=np.arange(5))
    with np.load(tmp_path / "split.npz") as data:
        assert data["train"].tolist() == [0, 1, 2, 3, 4]
    with atomic_writer(tmp_path / "frame.csv.gz") as tmp:
        pd.DataFrame({"smiles": ["CCO", "CCN"]}).to_csv(tmp, index=False)
    assert (tmp_path / "frame.csv.gz").read_bytes()[:2] == b"\x1f\x8b"  # gzip magic
    assert pd.read_csv(tmp_path / "frame.csv.gz")["smiles"].tolist() == ["CCO", "CCN"]
    assert _leftovers(tmp_path) == []
