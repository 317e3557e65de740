"""The output folder of a training run: every file written whole, one run at a time, and a rerun that finishes the run
it finds instead of mixing two.

- [`atomic_open`] and [`staged_folder`] write files under a temporary name in the target folder and rename them into
  place (a rename within one file system is atomic), so a reader, or a run started again after a kill, sees the old
  whole file or the new whole file, never a part. Files get the mode the umask gives a new file (safetensors alone
  writes its weights with mode 0600).
- [`OutputFolder`] holds a lock on the folder while a run uses it (a second run on the same folder is refused; the
  lock of a killed run is released by the kernel, so it is recognised as stale and taken over), keeps a record of
  what identifies the run (arguments, data files fingerprint, model config, labels) and which phases are complete,
  and refuses to start a run that differs from the one the folder holds.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import logging

logger = logging.get_logger(__name__)

# Names starting with `_` are left out of the Trainer's Hub uploads of the output folder (`ignore_patterns=["_*"]`):
# the record holds local paths, the lock a process id, and staging folders are never whole.
RUN_RECORD_NAME = "_su4mlc_run.json"
LOCK_NAME = "_su4mlc_run.lock"
STAGING_PREFIX = "_tmp-save-"
# What a run's phases leave in the folder, deleted with the run when `--overwrite_output_dir` starts a new one.
RUN_OUTPUT_NAMES = (
    "train_results.json", "eval_results.json", "predict_results.json", "all_results.json", "trainer_state.json",
    "predictions.jsonl",
)  # fmt: skip
# Disk-full errors that do not carry errno 28: torch.save's writer and safetensors' serializer.
DISK_FULL_MESSAGES = ("No space left on device", "unexpected pos", "StorageFull", "file write failed")


class OutputFolderError(RuntimeError):
    """A run cannot use its output folder: the message is one line that names the folder and what to do."""


def _new_file_mode() -> int:
    """The mode `open()` gives a new file under the current umask (read without changing it for long)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def publish(temporary: str | os.PathLike, path: str | os.PathLike) -> None:
    """Renames the whole file `temporary` to `path` (same folder, so atomic), with the umask's mode."""
    os.chmod(temporary, _new_file_mode())
    os.replace(temporary, path)


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """
    `open(path, mode)` for writing, atomically: the file object writes to a temporary file beside `path`, which
    replaces `path` when the block ends without an error; on an error (or a kill) `path` is left as it was.

    Example: `with atomic_open(folder / "results.json") as file: json.dump(results, file)`.
    """
    path = Path(path)
    if "b" not in mode:
        open_kwargs.setdefault("encoding", "utf-8")
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with open(descriptor, mode, **open_kwargs) as file:
            yield file
        publish(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, value: Any) -> None:
    """Writes `value` as indented JSON to `path`, atomically (the layout of transformers' `*_results.json`)."""
    with atomic_open(path) as file:
        json.dump(value, file, indent=4, sort_keys=True)


def read_json(path: str | os.PathLike) -> Any | None:
    """The JSON value in `path`, or None if the file is missing or not whole JSON (e.g. left empty by a kill)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError):
        logger.warning(f"{path} is not whole JSON (left by an interrupted run?): it is written again.")
        return None


@contextmanager
def staged_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """
    Yields an empty staging folder inside `folder`. When the block ends without an error, every file written into
    it is renamed to the same name in `folder` ([`publish`]); the staging folder is removed in any case. Use it for
    writers that write several files themselves (`save_pretrained`): each file then appears whole.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=STAGING_PREFIX))
    try:
        yield staging
        for file in sorted(staging.rglob("*")):
            if file.is_file():
                target = folder / file.relative_to(staging)
                target.parent.mkdir(parents=True, exist_ok=True)
                publish(file, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def files_fingerprint(paths: Iterable[str | os.PathLike]) -> dict[str, str]:
    """SHA-256 of every file under `paths` (files, or folders read recursively), keyed by path: what a run read."""
    fingerprint = {}
    for root in paths:
        root = Path(root)
        for file in sorted(root.rglob("*")) if root.is_dir() else [root]:
            if file.is_file():
                digest = hashlib.sha256()
                with file.open("rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
                fingerprint[str(file)] = digest.hexdigest()
    return fingerprint


def is_disk_full(error: BaseException) -> bool:
    """Whether `error` says a write found no space (an `OSError` with ENOSPC/EDQUOT, or torch's and safetensors'
    own wording of it)."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return any(message in str(error) for message in DISK_FULL_MESSAGES)


def _bytes(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024


def _differences(recorded: Mapping, current: Mapping, prefix: str = "") -> list[str]:
    """`name: old -> new` for each leaf that differs between two nested dicts."""
    differences = []
    for name in sorted(set(recorded) | set(current)):
        old, new = recorded.get(name), current.get(name)
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            differences += _differences(old, new, f"{prefix}{name}.")
        elif old != new:
            differences.append(f"{prefix}{name}: {_short(old)} -> {_short(new)}")
    return differences


def _short(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _as_json(value: Any) -> Any:
    """`value` as it reads back from JSON (tuples become lists, enums their value), for comparisons with a record."""
    return json.loads(json.dumps(value, default=str))


class OutputFolder:
    """
    The output folder of one run, used as a context manager around the run: it takes the folder's lock on entry and
    releases it on exit.

    Only the main process of a data-parallel run (`is_main_process`) locks and writes; the others read the record.

    Args:
        folder (`str` or `os.PathLike`): the output folder (created if missing).
        is_main_process (`bool`, *optional*, defaults to `True`): whether this process writes in the folder.
    """

    def __init__(self, folder: str | os.PathLike, is_main_process: bool = True):
        self.folder = Path(folder)
        self.is_main_process = is_main_process
        self.record: dict = {}
        self._lock_descriptor: int | None = None

    # The lock.

    def __enter__(self) -> OutputFolder:
        if self.is_main_process:
            self._check_writable()
            self._lock()
            self._remove_leftovers()
        self.record = read_json(self.folder / RUN_RECORD_NAME) or {}
        return self

    def __exit__(self, *exc_info) -> None:
        if self._lock_descriptor is not None:
            # Emptied, not deleted: deleting a locked file lets a third run lock a new file while a second one waits
            # on the old one.
            os.ftruncate(self._lock_descriptor, 0)
            os.close(self._lock_descriptor)  # closing releases the lock
            self._lock_descriptor = None

    def _check_writable(self) -> None:
        """The folder exists (or is created) and a file can be written in it: fails now, not at the first save."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.folder):
                pass
        except OSError as error:
            raise OutputFolderError(
                f"Cannot write in the output folder {self.folder}: {error.strerror or error}; make it writable or "
                "choose another --output_dir."
            ) from error

    def _lock(self) -> None:
        """Locks `LOCK_NAME` with `flock`, which the kernel releases when the process ends, however it ends."""
        descriptor = os.open(self.folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, _new_file_mode())
        holder = os.read(descriptor, 200).decode("utf-8", "replace").strip()
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise OutputFolderError(
                f"The output folder {self.folder} is in use by another run ({holder or 'unknown process'}); wait for "
                "it to end or choose another --output_dir."
            ) from None
        if holder:
            logger.warning(f"Took over the lock of {self.folder} from {holder}, which is no longer running.")
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"process {os.getpid()} on {socket.gethostname()}".encode(), 0)
        self._lock_descriptor = descriptor

    def _remove_leftovers(self) -> None:
        """Removes the temporary files and staging folders of writes a killed run did not finish."""
        for leftover in [*self.folder.glob(f"{STAGING_PREFIX}*"), *self.folder.glob(".*.tmp")]:
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()

    # The record.

    def check_run(self, identity: Mapping[str, Any], *, overwrite: bool = False, resume_from_checkpoint=None) -> None:
        """
        Checks that this run is the one the folder holds, before any work.

        A folder with no record (new, or written by an older version) is taken as it is. With `overwrite`, the run
        the folder holds is deleted (checkpoints, results, record) and a new one starts. With an explicit
        `resume_from_checkpoint`, the new identity is accepted (the user chose the checkpoint). Otherwise an identity
        that differs raises an [`OutputFolderError`] that names the differences and the choices.

        Args:
            identity (`Mapping`): JSON-able; top-level keys name the kind of difference (`model`, `data`, `training`).
        """
        identity = _as_json(identity)
        if overwrite:
            self._delete_run()
        elif self.record and resume_from_checkpoint is None:
            differences = _differences(self.record.get("identity", {}), identity)
            if differences:
                shown = "; ".join(differences[:3]) + (f"; and {len(differences) - 3} more" if len(differences) > 3 else "")
                state = "a finished run" if self.is_complete(self.record.get("phases", [])) else "another run"
                raise OutputFolderError(
                    f"The output folder {self.folder} holds {state} with different settings ({shown}); pass "
                    "--overwrite_output_dir to replace it, --resume_from_checkpoint PATH to continue from one of its "
                    "checkpoints anyway, or choose another --output_dir."
                )
        if not self.record or self.record.get("identity") != identity:
            self.record = {"identity": identity, "phases": {}}
            self._save_record()

    def check_model(
        self, model: Mapping[str, Any], checkpoint: str | None = None, checkpoint_model: Mapping[str, Any] | None = None
    ) -> None:
        """
        Records the model of the run (e.g. its config and labels). Raises if the folder recorded another one, or if
        the checkpoint the run resumes from (`checkpoint`, holding `checkpoint_model`) holds another one: a folder
        written before records existed, or a `--resume_from_checkpoint` of another run.
        """
        model = _as_json(model)
        for holder, other in (
            (f"The output folder {self.folder} holds a run of", self.record.get("model")),
            (f"The checkpoint {checkpoint} holds", checkpoint_model),
        ):
            differences = _differences(_as_json(other), model) if other is not None else []
            if differences:
                raise OutputFolderError(
                    f"{holder} another model ({'; '.join(differences[:3])}); pass --overwrite_output_dir to replace "
                    "the run or choose another --output_dir."
                )
        self.record["model"] = model
        self._save_record()

    def _delete_run(self) -> None:
        if not self.is_main_process:
            return
        for checkpoint in self.folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
            shutil.rmtree(checkpoint)
        for name in (*RUN_OUTPUT_NAMES, RUN_RECORD_NAME):
            (self.folder / name).unlink(missing_ok=True)
        self.record = {}

    def _save_record(self) -> None:
        if self.is_main_process:
            write_json(self.folder / RUN_RECORD_NAME, self.record)

    def is_complete(self, phases: Iterable[str]) -> bool:
        """Whether every one of `phases` was recorded complete."""
        return all(phase in self.record.get("phases", {}) for phase in phases)

    def complete(self, phase: str, results: Mapping[str, float] | None = None) -> None:
        """Records `phase` complete, with its metrics if it has any: call it once all its files are written."""
        self.record.setdefault("phases", {})[phase] = None if results is None else _as_json(dict(results))
        self._save_record()

    def results(self, phase: str) -> dict[str, float] | None:
        """The metrics recorded with `phase`; None if it is not complete or has none."""
        return self.record.get("phases", {}).get(phase)

    def all_results(self, phases: Iterable[str]) -> dict[str, dict[str, float]]:
        """The recorded metrics of those of `phases` that have some, by phase."""
        return {phase: self.results(phase) for phase in phases if self.results(phase) is not None}

    # Space.

    def check_free_space(self, needed_bytes: int) -> None:
        """Raises if the folder's file system has less than `needed_bytes` free (an estimate of what the run
        writes), before training starts rather than at a checkpoint."""
        free = shutil.disk_usage(self.folder).free
        if free < needed_bytes:
            raise OutputFolderError(
                f"The output folder {self.folder} has {_bytes(free)} free, and this run needs about "
                f"{_bytes(needed_bytes)} (checkpoints and the final model); free some space or choose another "
                "--output_dir."
            )

    def disk_full_error(self, error: BaseException) -> OutputFolderError:
        """The one-line error for a write that found the disk full (raise it from `error`). It names the folder of the
        file that failed when the error gives it (e.g. the `datasets` cache), else the output folder (torch and
        safetensors do not name their file)."""
        failed_file = getattr(error, "filename", None)
        folder = Path(failed_file).parent if failed_file else self.folder
        name = f"the output folder {folder}" if folder == self.folder else str(folder)
        return OutputFolderError(
            f"The disk of {name} is full ({_bytes(shutil.disk_usage(folder).free)} free) and a write failed; free "
            "some space and run the same command again (it resumes), or choose another --output_dir."
        )
