"""Writing and reading artefacts safely: atomic writes, a format version, weights-only loading.

Every file the package writes (training checkpoints, the saved detector, events, scores) goes
through this module, so that four promises hold everywhere:

- nothing is replaced unasked: :func:`refuse_existing` is the one check, raising
  :class:`~tabresnet_course.errors.InputError`;
- a file is either the old version or the complete new one, never half written: we write a
  temporary file in the same directory, ``fsync`` it and ``os.replace`` it over the target; a
  directory of files is written the same way (:func:`atomic_write_directory`), and its files
  carry SHA-256 checksums (:func:`sha256`, :func:`read_checked_bytes`);
- a checkpoint carries ``format_version`` (and the package version that wrote it), and a file
  from a newer or unknown format is refused with a clear message;
- loading never unpickles arbitrary objects: ``torch.load(..., weights_only=True)`` only accepts
  tensors and plain Python data, so a checkpoint holds tensors, ``dict``, ``list``, ``tuple``,
  ``str``, ``int``, ``float``, ``bool`` and ``None``; configurations are stored as plain dicts
  (``to_dict()``), never as objects; arrays are ``.npy`` read with ``allow_pickle=False``.

Used by chapter "The complete training loop" (checkpoints) and by the OCSF pipeline (detector).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tabresnet_course.errors import InputError, collapse_whitespace

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = [
    "FORMAT_VERSION",
    "atomic_save_torch",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_directory",
    "json_bytes",
    "load_checkpoint",
    "load_json",
    "load_npy_bytes",
    "load_state_dict_bytes",
    "npy_bytes",
    "ordinary_mode",
    "package_version",
    "read_checked_bytes",
    "refuse_existing",
    "save_json_atomic",
    "sha256",
    "torch_bytes",
    "with_format_version",
]

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


def refuse_existing(
    path: str | os.PathLike,
    overwrite: bool,
    what: str = "file",
    replaceable: Callable[[Path], bool] | None = None,
) -> Path:
    """Raise :class:`InputError` unless ``what`` may be written at ``path``; returns the path.

    With ``what="file"`` a directory at ``path`` is always refused and an existing file needs
    ``overwrite``. Any other ``what`` (e.g. ``"saved detector"``) names the contents of a
    directory: an existing file at ``path`` is always refused, and an existing directory needs
    ``overwrite`` and must be empty or pass ``replaceable(path)``. Every writer of the package
    (and the command line's ``--overwrite``) goes through this one check.
    """
    path = Path(path)
    if what == "file" and path.is_dir():
        raise InputError(f"{path} is a directory; give the path of a file to write")
    if not path.exists():
        return path
    if not overwrite:
        raise InputError(f"{path} already exists; pass --overwrite (overwrite=True) to replace it")
    if what != "file" and not path.is_dir():
        raise InputError(f"{path} exists and is not a directory; refusing to replace it")
    if what != "file" and any(path.iterdir()) and not (replaceable is not None and replaceable(path)):
        raise InputError(f"{path} is not empty and does not hold a {what}; refusing to replace it")
    return path


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], *, overwrite: bool = True) -> Path:
    """Call ``write(temporary_path)`` and move the finished file onto ``path`` atomically.

    The temporary file sits in the target's directory, is ``fsync``-ed and given ordinary
    permissions, then ``os.replace`` puts it in place: readers see the old file or the complete
    new one, never a partial one. A directory at ``path``, or an existing file with
    ``overwrite=False``, is refused by :func:`refuse_existing`. Creates missing parent
    directories. Returns the path written.
    """
    path = refuse_existing(path, overwrite)
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


def atomic_write_directory(
    directory: str | os.PathLike,
    files: dict[str, bytes],
    *,
    overwrite: bool,
    what: str,
    replaceable: Callable[[Path], bool] | None = None,
) -> Path:
    """Write ``files`` (name -> bytes) as the directory ``directory``, atomically.

    The files are written (each with :func:`atomic_write_bytes`, so ``fsync``-ed) into a
    staging directory next to ``directory``, which is then renamed into place; an existing
    ``directory`` is renamed aside first and removed only once the new one is in place, so a
    crash leaves one complete version. What may be replaced is decided by
    :func:`refuse_existing` (``what`` and ``replaceable`` as there). Returns the directory.
    """
    directory = refuse_existing(directory, overwrite, what, replaceable)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
    try:
        for name, data in files.items():
            atomic_write_bytes(staging / name, data)
        staging.chmod(ordinary_mode(directory=True))  # mkdtemp makes it private
        replace_directory(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def replace_directory(staging: Path, directory: Path) -> None:
    """Move ``staging`` to ``directory``. An existing ``directory`` is first renamed aside and
    removed only after the new one is in place, so a crash leaves one complete version."""
    if not directory.exists():
        os.replace(staging, directory)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".old", dir=directory.parent))
    os.replace(directory, aside / "old")
    try:
        os.replace(staging, directory)
    except BaseException:
        os.replace(aside / "old", directory)
        raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)
    fsync_directory(directory.parent)


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


def torch_bytes(obj: Any) -> bytes:
    """``obj`` serialised by ``torch.save``; it should hold only tensors and plain Python data
    so that weights-only loading can read it back."""
    import torch  # here, not at the top: JSON-only users of this module need no PyTorch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def atomic_save_torch(obj: Any, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
    """``torch.save`` made atomic (see :func:`atomic_write_bytes`). ``obj`` should hold only
    tensors and plain Python data so that :func:`load_checkpoint` can read it back."""
    return atomic_write_bytes(path, torch_bytes(obj), overwrite=overwrite)


def npy_bytes(array: np.ndarray) -> bytes:
    """``array`` as float32 in ``.npy`` format, without pickle."""
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()


def load_npy_bytes(data: bytes, path: str | os.PathLike) -> np.ndarray:
    """The array stored in ``data`` (the contents of ``path``), read with ``allow_pickle=False``;
    anything else raises :class:`InputError` naming ``path``."""
    import numpy as np

    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, EOFError, OSError) as error:  # EOFError: an empty file
        raise InputError(f"{path} is not a valid .npy array: {error}") from None


def sha256(data: bytes) -> str:
    """Hex SHA-256 of ``data`` (recorded next to a file to detect corruption)."""
    return hashlib.sha256(data).hexdigest()


def read_checked_bytes(path: str | os.PathLike, expected_sha256: Any, recorded_in: str) -> bytes:
    """The bytes of ``path``, checked against the SHA-256 recorded in ``recorded_in``; a missing
    or corrupted file raises :class:`InputError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file (the directory is incomplete)")
    data = path.read_bytes()
    if expected_sha256 != sha256(data):
        raise InputError(f"{path} is corrupted: its SHA-256 does not match the one recorded in {recorded_in}")
    return data


def json_bytes(obj: Any) -> bytes:
    """``obj`` as indented, key-sorted UTF-8 JSON. Refuses values JSON cannot hold
    (``ValueError`` from ``json``), including NaN and infinity."""
    return (json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")


def save_json_atomic(obj: Any, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
    """Write ``obj`` as :func:`json_bytes` atomically."""
    return atomic_write_bytes(path, json_bytes(obj), overwrite=overwrite)


def load_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a missing or malformed file raises :class:`InputError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path} is not valid JSON: {error}") from None


def load_state_dict_bytes(data: bytes, path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A ``state_dict`` stored in ``data`` (the contents of ``path``), loaded weights-only on
    the CPU; pickled objects, damaged data or anything but a dict raise :class:`InputError`."""
    import torch

    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # UnpicklingError, RuntimeError, EOFError, ...
        reason = collapse_whitespace(error)[:200]
        raise InputError(f"{path} is not a weights-only state_dict: {type(error).__name__}: {reason}") from None
    if not isinstance(state, dict):
        raise InputError(f"{path} is not a state_dict (got {type(state).__name__})")
    return state


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
