"""Writing and reading artefacts safely: atomic writes, a format version, weights-only loading.

Every file the package writes (training checkpoints, the saved detector) goes through this
module, so that three promises hold everywhere:

- a file is either the old version or the complete new one, never half written: we write a
  temporary file in the same directory, ``fsync`` it and ``os.replace`` it over the target;
- a checkpoint carries ``format_version`` (and the package version that wrote it), and a file
  from a newer or unknown format is refused with a clear message;
- loading never unpickles arbitrary objects: ``torch.load(..., weights_only=True)`` only accepts
  tensors and plain Python data, so a checkpoint holds tensors, ``dict``, ``list``, ``tuple``,
  ``str``, ``int``, ``float``, ``bool`` and ``None``; configurations are stored as plain dicts
  (``to_dict()``), never as objects.

Used by chapter "The complete training loop" (checkpoints) and by the OCSF pipeline (detector).
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from tabresnet_course.errors import InputError, collapse_whitespace

if TYPE_CHECKING:
    import torch

FORMAT_VERSION = 1
"""Version of the checkpoint layout; bump it when a reader of the old layout would misread."""


def package_version() -> str:
    """The installed ``tabresnet_course`` version, recorded in every artefact."""
    from tabresnet_course import __version__  # imported late: the package imports this module

    return __version__


def ordinary_mode(directory: bool = False) -> int:
    """The permissions a plain ``open(path, "w")`` (or ``mkdir``) would give: ``0o666`` (``0o777``
    for a directory) less the process umask. Temporary files start private; artefacts should not."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], *, overwrite: bool = True) -> Path:
    """Call ``write(temporary_path)`` and move the finished file onto ``path`` atomically.

    The temporary file sits in the target's directory, is ``fsync``-ed and given ordinary
    permissions, then ``os.replace`` puts it in place: readers see the old file or the complete
    new one, never a partial one. With ``overwrite=False`` an existing file is refused
    (``FileExistsError``). Creates missing parent directories. Returns the path written.
    """
    path = Path(path)
    if path.is_dir():  # os.replace would fail only after the work, naming the temporary file
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a file", str(path))
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        write(temporary)
        with open(temporary, "rb+") as file:
            os.fsync(file.fileno())
        temporary.chmod(ordinary_mode())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
    return path


def fsync_directory(directory: Path) -> None:
    """Make a rename inside ``directory`` durable, where the platform can open directories."""
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, overwrite: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda temporary: temporary.write_bytes(data), overwrite=overwrite)


def atomic_save_torch(obj: Any, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
    """``torch.save`` made atomic (see :func:`atomic_write_bytes`). ``obj`` should hold only
    tensors and plain Python data so that :func:`load_checkpoint` can read it back."""
    import torch  # here, not at the top: JSON-only users of this module need no PyTorch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write_bytes(path, buffer.getvalue(), overwrite=overwrite)


def save_json_atomic(obj: Any, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
    """Write ``obj`` as indented, key-sorted JSON atomically. Refuses values JSON cannot hold
    (``ValueError`` from ``json``), including NaN and infinity."""
    text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"
    return atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def load_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a missing or malformed file raises :class:`InputError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path} is not valid JSON: {error}") from None


def with_format_version(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` plus ``format_version`` and ``package_version`` (a new dict)."""
    return {**payload, "format_version": FORMAT_VERSION, "package_version": package_version()}


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written with :func:`atomic_save_torch`, safely.

    Uses ``torch.load(weights_only=True)``, so a file holding pickled objects (classes,
    functions) is refused rather than executed. Raises :class:`InputError` naming the file when
    it is missing, truncated or corrupted, not a dict, or has a missing or newer format version.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError, ...
        reason = collapse_whitespace(error)
        if "Unsupported global" in reason:
            found = re.search(r"GLOBAL (\S+)", reason)
            name = f" ({found.group(1)})" if found else ""
            reason = f"it contains a pickled Python object{name}, which weights-only loading refuses"
        elif "WeightsUnpickler error:" in reason:  # not a torch file at all, or damaged
            detail = reason.split("WeightsUnpickler error:")[1].split(" Check the")[0].strip()
            reason = f"it is not a PyTorch file, or it is damaged ({detail})"
        else:
            first_sentence = reason.split(". ")[0][:120]
            reason = f"the file is truncated or corrupted ({type(error).__name__}: {first_sentence})"
        raise InputError(f"{path} is not a valid checkpoint: {reason}") from None
    if not isinstance(payload, dict):
        raise InputError(f"{path} is not a valid checkpoint: expected a dict, got {type(payload).__name__}")
    version = payload.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise InputError(f"{path} is not a valid checkpoint: it has no integer 'format_version'")
    if version > FORMAT_VERSION:
        raise InputError(
            f"{path} has format_version {version}, newer than this package understands "
            f"({FORMAT_VERSION}); upgrade tabresnet_course (it was written by "
            f"{payload.get('package_version', 'an unknown version')})"
        )
    if version < 1:
        raise InputError(f"{path} has an invalid format_version {version}")
    return payload
