"""botocore's data files through asyncup's cache (``_s3.models``): the same data as botocore's
loader gives, parsed once, and parsed afresh when the file or the entry is not what it was."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import botocore.loaders
import pytest

from asyncup._s3 import models
from asyncup._s3.models import _LeanFileLoader

DATA = Path(botocore.loaders.Loader.BUILTIN_DATA_PATH)
MODEL = str(DATA / "s3" / "2006-03-01" / "service-2")  # as botocore names it: no extension


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "asyncup" / "botocore-data"


def no_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("parsed the JSON again")

    monkeypatch.setattr(models.json, "loads", refuse)


def test_a_model_is_parsed_once_and_then_read_from_the_cache(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = botocore.loaders.JSONFileLoader().load_file(MODEL)
    assert _LeanFileLoader().load_file(MODEL) == whole
    assert len(list(cache.glob("*.marshal"))) == 1
    no_parsing(monkeypatch)
    assert _LeanFileLoader().load_file(MODEL) == whole


def test_the_endpoints_are_cached_as_trimmed(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(DATA / "endpoints")
    first = _LeanFileLoader().load_file(path)
    no_parsing(monkeypatch)
    again = _LeanFileLoader().load_file(path)
    assert again == first
    for partition in again["partitions"]:
        assert set(partition["services"]) <= set(models._ENDPOINT_SERVICES)


def test_a_changed_file_is_parsed_afresh(cache: Path, tmp_path: Path) -> None:
    source = tmp_path / "data" / "thing.json"
    source.parent.mkdir()
    source.write_text('{"version": 1}')
    name = str(source.with_suffix(""))
    assert _LeanFileLoader().load_file(name) == {"version": 1}
    source.write_text('{"version": 22}')  # another size
    assert _LeanFileLoader().load_file(name) == {"version": 22}
    source.write_text('{"version": 33}')  # the same size, another time
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert _LeanFileLoader().load_file(name) == {"version": 33}


def test_a_damaged_entry_is_parsed_again_and_rewritten(cache: Path) -> None:
    whole = botocore.loaders.JSONFileLoader().load_file(MODEL)
    _LeanFileLoader().load_file(MODEL)
    (entry,) = cache.glob("*.marshal")
    good = entry.read_bytes()
    for damaged in (good[: len(good) // 2], b"not marshal at all", b"N"):  # b"N": None
        entry.write_bytes(damaged)
        assert _LeanFileLoader().load_file(MODEL) == whole
        assert entry.read_bytes() == good


def test_without_a_usable_cache_directory_the_files_are_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))  # no directory can be made in it
    whole = botocore.loaders.JSONFileLoader().load_file(MODEL)
    assert _LeanFileLoader().load_file(MODEL) == whole
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # ignored, as XDG says
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert _LeanFileLoader().load_file(MODEL) == whole
    assert list((tmp_path / "home").rglob("*.marshal"))
    shutil.rmtree(tmp_path / "home")


def test_a_missing_file_is_none_as_botocore_says(cache: Path, tmp_path: Path) -> None:
    assert _LeanFileLoader().load_file(str(tmp_path / "nothing")) is None
    assert not cache.exists()
    (tmp_path / "folder.json").mkdir()  # not a file: botocore looks for the next one
    (tmp_path / "folder.json.gz").write_bytes(gzip.compress(b'{"found": "gz"}'))
    assert _LeanFileLoader().load_file(str(tmp_path / "folder")) == {"found": "gz"}
