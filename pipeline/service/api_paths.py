"""The two directories a stream created over the API may touch: the output root and the media root.

Over the API a file is named relative to a root the operator chose, never by a path of the host:

- ``OutputRoot`` (``serve --output-dir``): ``jsonl:NAME`` and ``video:NAME`` sinks write
  ``ROOT/NAME``. The file is created new (``O_EXCL``), so a caller can neither overwrite nor append
  to a file the server did not create for that stream; only an API stream started again (at boot,
  or by ``restart``) may reopen its own file (``reopen=True``). Subdirectories in a name are
  created (0700) inside the root. Every component is opened without following symlinks, so a
  symlink anywhere in the name is refused, whether it leads out or not.
- ``MediaRoot`` (``serve --media-root``): a file source ``NAME`` reads ``ROOT/NAME``, which must
  resolve (symlinks followed) to a readable regular file inside the root. Every refusal has the
  same message, so a caller cannot tell a missing file from an unreadable one or one outside.

Names: relative (no leading ``/``), no ``..`` component, not starting with ``~`` (nothing is
expanded); empty and ``.`` components are ignored.

Examples:
    >>> relative_parts("cams/dock.jsonl")
    ('cams', 'dock.jsonl')
    >>> relative_parts("../etc/passwd") is None
    True
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ConfigError

OUTPUT_DIR_MODE = 0o700
OUTPUT_FILE_MODE = 0o600

NAME_RULE = "a name relative to the root: no leading '/', no '..', no leading '~'"


def relative_parts(name: str) -> tuple[str, ...] | None:
    """The components of ``name`` under a root, or None when it is absolute, climbs or is empty."""
    if name.startswith(("/", "~")):
        return None
    parts = tuple(part for part in name.split("/") if part not in ("", "."))
    if not parts or ".." in parts:
        return None
    return parts


def _ready_directory(path: Path, *, flag: str, create: bool) -> Path:
    """``path`` with ``~`` expanded and symlinks resolved, created 0700 first when ``create``."""
    path = path.expanduser()
    try:
        if create:
            path.mkdir(mode=OUTPUT_DIR_MODE, parents=True, exist_ok=True)
        real = Path(os.path.realpath(path))
        if not real.is_dir():
            raise ConfigError(f"{flag} {str(path)!r} is not a directory", field=flag)
        os.listdir(real)  # readable: a permission problem shows now, not at the first request
    except OSError as error:
        raise ConfigError(
            f"{flag} {str(path)!r} cannot be used: {error.strerror or error}", field=flag
        ) from None
    return real


@dataclass(frozen=True)
class OutputRoot:
    """The directory sinks given over the API write under (see the module docstring)."""

    path: Path

    FLAG = "--output-dir"

    @classmethod
    def prepare(cls, path: Path) -> OutputRoot:
        """Create the root (0700, parents too) if it is missing.

        Raises:
            ConfigError: it cannot be created or is not a usable directory (names ``--output-dir``).
        """
        return cls(_ready_directory(path, flag=cls.FLAG, create=True))

    def create_file(self, name: str, *, reopen: bool = False) -> tuple[Path, bool]:
        """Create ``ROOT/NAME`` (0600) and directories on the way (0700), following no symlink.

        Args:
            name: the sink's file name, relative to the root.
            reopen: a file that exists is accepted (a stored stream restarted at boot reopens its
                own file); it must still be a regular file reached without symlinks.

        Returns:
            The file's path, and whether this call created it (a failed start removes only those).

        Raises:
            ConfigError: the name breaks ``NAME_RULE``, passes through a symlink or a file, the
                file exists (without ``reopen``), or it cannot be created.
        """
        parts = relative_parts(name)
        if parts is None:
            raise ConfigError(f"a sink file must be {NAME_RULE} of the output root")
        try:  # the root may have been removed since the server started
            directory = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as error:
            raise ConfigError(_create_problem(error)) from None
        try:
            for part in parts[:-1]:
                inner = _enter(directory, part)
                os.close(directory)
                directory = inner
            created = _create(directory, parts[-1], reopen=reopen)
        except OSError as error:
            raise ConfigError(_create_problem(error)) from None
        finally:
            os.close(directory)
        return self.path.joinpath(*parts), created


def _enter(directory: int, part: str) -> int:
    """Open the subdirectory ``part`` of ``directory``, creating it (0700) first if missing."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(part, OUTPUT_DIR_MODE, dir_fd=directory)
    return os.open(
        part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=directory
    )


def _create(directory: int, name: str, *, reopen: bool) -> bool:
    """Create ``name`` in ``directory`` exclusively, or with ``reopen`` accept a regular file."""
    # O_NONBLOCK: opening a FIFO someone put there must fail (ENXIO), not hang the request.
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(name, flags | os.O_EXCL, OUTPUT_FILE_MODE, dir_fd=directory)
        created = True
    except FileExistsError:
        if not reopen:
            raise
        fd = os.open(name, flags, OUTPUT_FILE_MODE, dir_fd=directory)
        created = False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
    finally:
        os.close(fd)
    return created


def _create_problem(error: OSError) -> str:
    """The one-line reason a sink file cannot be created; never a path (it holds the root)."""
    if error.errno == errno.EEXIST:
        return (
            "the sink file already exists in the output root; the server writes only files it "
            "creates: choose a new name"
        )
    if error.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
        return "a sink file name may not pass through a symlink or a file in the output root"
    return f"the sink file cannot be created in the output root: {error.strerror or error}"


@dataclass(frozen=True)
class MediaRoot:
    """The directory file sources given over the API read from (see the module docstring)."""

    path: Path

    FLAG = "--media-root"
    REFUSED = (
        "source must name a readable file inside the server's media root (--media-root), as "
        f"{NAME_RULE}"
    )

    @classmethod
    def prepare(cls, path: Path) -> MediaRoot:
        """Check the root is a readable directory.

        Raises:
            ConfigError: it is missing or not a readable directory (names ``--media-root``).
        """
        return cls(_ready_directory(path, flag=cls.FLAG, create=False))

    def resolve(self, name: str) -> Path:
        """``ROOT/NAME`` with symlinks resolved, if it is a readable regular file inside the root.

        Raises:
            ConfigError: otherwise, always with ``REFUSED``: missing, unreadable, not a file and
                outside the root look the same to the caller.
        """
        parts = relative_parts(name)
        if parts is None:
            raise ConfigError(self.REFUSED, field="source")
        real = Path(os.path.realpath(self.path.joinpath(*parts)))
        if not real.is_relative_to(self.path) or not _readable_file(real):
            raise ConfigError(self.REFUSED, field="source")
        return real


def _readable_file(path: Path) -> bool:
    """Whether ``path`` opens for reading and is a regular file (not a FIFO, device, directory)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode)
    finally:
        os.close(fd)
