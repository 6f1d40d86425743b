"""What ``asyncup cp`` uploads: SRC and DST turned into items (source, bucket, key, size).

    SRC a file       -> one item: DST's key, or DST's prefix + the file's base name
    SRC a directory  -> one item per regular file under it that the filters select,
                        at DST's prefix + the path relative to SRC
    SRC "-"          -> one item read from stdin (of unknown length unless stdin is a file)

Keys are checked before any request: no "." or ".." segment, no leading "/", no control
character, valid UTF-8, at most 1024 bytes. A bad key given on the command line is a usage
error; a bad key made from a file's name is that file's failure, reported like any other.

Directory walks follow a symlink only when it resolves inside SRC and does not lead back to
one of its own ancestors (a loop); anything else that is not a regular file (sockets, FIFOs,
devices, broken links) is skipped with a warning.
"""

from __future__ import annotations

import os
import stat
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

STDIN = "-"
MAX_KEY_BYTES = 1024

Filter = tuple[str, str]
"""("include" | "exclude", glob), in the order given on the command line."""


class UsageError(ValueError):
    """SRC or DST cannot be used as given (exit status 2)."""


@dataclass(frozen=True, slots=True)
class Destination:
    """``s3://bucket/key``; a key that is empty or ends with "/" is a prefix."""

    bucket: str
    key: str

    @property
    def is_prefix(self) -> bool:
        return self.key == "" or self.key.endswith("/")


@dataclass(frozen=True, slots=True)
class Item:
    """One object to upload. ``problem`` says why it will not be, when it will not."""

    source: str
    bucket: str
    key: str
    size: int | None
    problem: str | None = None

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(slots=True)
class Listing:
    items: list[Item] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Warnings: paths not uploaded on purpose, and why."""


def parse_destination(text: str) -> Destination:
    """``s3://bucket/key`` or ``s3://bucket/prefix/`` (or ``s3://bucket``)."""
    if not text.startswith("s3://"):
        raise UsageError(f"DST must look like s3://bucket/key or s3://bucket/prefix/; got {text!r}")
    bucket, _, key = text[len("s3://") :].partition("/")
    if not bucket:
        raise UsageError(f"DST names no bucket: {text!r}")
    return Destination(bucket, key)


def key_problem(key: str, what: str = "key") -> str | None:
    """Why ``key`` must not be used, or None when it is fine."""
    if not key:
        return f"the {what} is empty"
    if key.startswith("/"):
        return f"the {what} {key!r} is an absolute path"
    if any(segment in (".", "..") for segment in key.split("/")):
        return f"the {what} {key!r} has a '.' or '..' segment"
    if any(unicodedata.category(char) == "Cc" for char in key):
        return f"the {what} {key!r} has a control character"
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError:
        return f"the {what} {key!r} is not valid UTF-8"
    if len(encoded) > MAX_KEY_BYTES:
        return f"the {what} is longer than {MAX_KEY_BYTES} bytes"
    return None


def selected(relative: str, filters: Sequence[Filter]) -> bool:
    """The last filter that matches decides; with none matching, a path is selected unless
    the first filter is an --include (then only what is included goes)."""
    keep = not filters or filters[0][0] == "exclude"
    for kind, pattern in filters:
        if fnmatchcase(relative, pattern):
            keep = kind == "include"
    return keep


def plan(source: str, destination: Destination, filters: Sequence[Filter]) -> Listing:
    """The items ``cp SRC DST`` uploads. Blocking (it walks directories): run it before the
    event loop or in a thread. ``OSError`` when SRC cannot be read."""
    if source == STDIN:
        return Listing([_stdin_item(destination, filters)])
    info = os.stat(source)
    if stat.S_ISDIR(info.st_mode):
        prefix = destination.key
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        if prefix and (problem := key_problem(prefix.removesuffix("/"), "prefix")):
            raise UsageError(problem)
        return walk(source, destination.bucket, prefix, filters)
    if filters:
        raise UsageError("--include/--exclude apply to a directory SRC")
    if not stat.S_ISREG(info.st_mode):
        raise UsageError(f"SRC is not a regular file or a directory: {source!r}")
    key = destination.key
    if destination.is_prefix:
        key += os.path.basename(source)
    if problem := key_problem(key):
        raise UsageError(problem)
    return Listing([Item(source, destination.bucket, key, info.st_size)])


def _stdin_item(destination: Destination, filters: Sequence[Filter]) -> Item:
    if destination.is_prefix:
        raise UsageError("stdin ('-') needs a key, not a prefix: s3://bucket/key")
    if filters:
        raise UsageError("--include/--exclude apply to a directory SRC")
    if problem := key_problem(destination.key):
        raise UsageError(problem)
    return Item(STDIN, destination.bucket, destination.key, stdin_size())


def stdin_size() -> int | None:
    """The bytes left on stdin when it is a regular file; None for a pipe or a terminal."""
    try:
        info = os.fstat(0)
        if not stat.S_ISREG(info.st_mode):
            return None
        return max(0, info.st_size - os.lseek(0, 0, os.SEEK_CUR))
    except OSError:
        return None


def walk(root: str, bucket: str, prefix: str, filters: Sequence[Filter]) -> Listing:
    """Every regular file under ``root`` that the filters select, sorted by key."""
    listing = Listing()
    real_root = os.path.realpath(root)
    top = os.stat(root)
    pending = [(root, "", frozenset({(top.st_dev, top.st_ino)}))]
    while pending:
        directory, relative_dir, ancestors = pending.pop()
        try:
            with os.scandir(directory) as scan:
                entries = list(scan)
        except OSError as exc:
            problem = f"cannot list {directory!r}: {exc.strerror or exc}"
            listing.items.append(Item(directory, bucket, prefix + relative_dir, None, problem))
            continue
        for entry in entries:
            relative = relative_dir + entry.name
            found = _visit(entry, relative, real_root, ancestors)
            if isinstance(found, str):
                listing.skipped.append(f"{relative!r}: {found}")
            elif isinstance(found, int):
                if selected(relative, filters):
                    key = prefix + relative
                    listing.items.append(Item(entry.path, bucket, key, found, key_problem(key)))
            else:
                pending.append((entry.path, relative + "/", ancestors | {found}))
    listing.items.sort(key=lambda item: item.key)
    listing.skipped.sort()
    return listing


def _visit(
    entry: os.DirEntry[str], relative: str, real_root: str, ancestors: frozenset[tuple[int, int]]
) -> int | tuple[int, int] | str:
    """A file's size, a directory's identity to descend into, or why the entry is skipped."""
    if entry.is_symlink():
        target = os.path.realpath(entry.path)
        if os.path.commonpath([target, real_root]) != real_root:
            return "a symlink to outside SRC, not followed"
    try:
        info = entry.stat(follow_symlinks=True)
    except OSError as exc:
        return f"cannot stat it ({exc.strerror or exc})"
    if stat.S_ISDIR(info.st_mode):
        identity = (info.st_dev, info.st_ino)
        if identity in ancestors:
            return "a symlink loop, not followed"
        return identity
    if stat.S_ISREG(info.st_mode):
        return info.st_size
    return "not a regular file"
