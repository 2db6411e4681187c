"""Files that are whole or absent: every write goes to a unique temporary name beside the target,
is flushed and fsync'd, then renamed over it (and the folder fsync'd), so a kill, a full disk or a
second writer never leaves half a file under the real name.

JSON state files are read through `read_json`, whose errors name the file and say what to do.
"""

import contextlib
import errno
import fcntl
import json
import os
import re
import sys
import tempfile


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # what open() would give: mkstemp makes 0600 files


class StorageError(OSError):
    """A write failed (disk full, permissions, ...); the target is unchanged and no temporary is left."""


class CorruptFileError(ValueError):
    """A state file cannot be read; the message names it and says what to do."""


def check_folder_name(name, argument="name"):
    """`name` if it is one path component (no separators, not '.' or '..'), else a ValueError naming `argument`.

    Export and model names become folder names: '../x' or '/tmp/x' must not write outside the
    folder they belong in.
    """
    bad = (not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name
           or "\0" in name or (os.altsep and os.altsep in name) or name != name.strip())
    if bad:
        raise ValueError(f"{argument} must be a single folder name (no '/', no '..', not empty). "
                         f"Received: {argument}={name!r}")
    return name


def _suffix(name):
    """The suffix a writer needs to recognise the file: '.weights.h5', '.keras', '.json', ..."""
    for double in (".weights.h5", ".tar.gz"):
        if name.endswith(double):
            return double
    return os.path.splitext(name)[1]


def fsync_path(path):
    """fsync a file or a folder (folders: so that a rename inside it is durable)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems do not fsync folders
    finally:
        os.close(fd)


def remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass


def describe(error):
    """One short line for an OSError (or an h5py/Keras error wrapping one: its system error message)."""
    text = " ".join(str(error).split())
    code = re.search(r"errno = (\d+)", text)  # h5py: "... errno = 28, error message = 'No space left ...'"
    if code:
        return os.strerror(int(code.group(1)))
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    return text[:300] or type(error).__name__


def atomic_save(path, write):
    """Call `write(tmp)` for a temporary path beside `path` (same suffix), fsync it, rename it to `path`.

    On any failure the temporary file is removed and `path` keeps its previous content; OS-level
    failures (a full disk, permissions; also as raised through h5py) become one `StorageError`
    that names `path`.
    """
    path = os.fspath(path)
    folder = os.path.dirname(path) or "."
    name = os.path.basename(path)
    tmp, failure = None, None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=f".tmp{_suffix(name)}", dir=folder)
        os.close(fd)
        os.chmod(tmp, FILE_MODE)
        write(tmp)
        fsync_path(tmp)
        os.replace(tmp, path)
    except StorageError:
        raise
    except (OSError, RuntimeError, ValueError) as error:
        if not (isinstance(error, OSError) or _looks_like_io_error(error)):
            raise
        failure = _storage_error(error, path)
    except BaseException:
        if tmp:
            remove_quietly(tmp)
        raise
    if failure is not None:
        # Outside the except block, so nothing keeps the writer's frames alive: h5py's file objects are
        # finalised now, while their (partial) file still exists, not at interpreter exit, where a
        # failing flush of a full disk crashed the process (exit 139). Then the temporary goes.
        _finalise_quietly(tmp)
        if tmp:
            remove_quietly(tmp)
        raise failure
    fsync_path(folder)
    return path


def _storage_error(error, path):
    """The one-line error for a failed write of `path`: a path problem keeps its type, anything else
    (a full disk, an I/O error, as OSError or through h5py) is a StorageError."""
    if type(error) in (PermissionError, IsADirectoryError, NotADirectoryError, FileNotFoundError):
        return type(error)(error.errno, f"cannot write {path} ({error.strerror})")
    code = getattr(error, "errno", None) or int((re.findall(r"errno = (\d+)", str(error)) or [errno.EIO])[0])
    return StorageError(code, f"could not write {path}: {describe(error)}")


def _finalise_quietly(tmp):
    """Close what a failed writer left open on `tmp`, with stderr silenced: HDF5 keeps a file whose
    flush failed (a full disk) open, reports it from finalisers ("Exception ignored in __dealloc__")
    and crashed the process at exit when it tried once more (exit 139)."""
    import gc

    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        gc.collect()
        if "h5py" in sys.modules:
            import h5py

            for fid in h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE):
                try:
                    if os.path.abspath(fid.name.decode()) == os.path.abspath(tmp):
                        fid.close()
                except Exception:  # a handle already closed or invalid: nothing left to release
                    pass
            gc.collect()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _looks_like_io_error(error):
    # h5py and Keras report a full disk as RuntimeError/ValueError("... write failed ...", errno=28).
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(
        word in text for word in ("write", "space", "errno", "file", "flush"))


def make_folders(path):
    """os.makedirs(path), returning the topmost folder it created (None if `path` existed)."""
    path = os.path.abspath(path)
    top, parent = None, path
    while not os.path.exists(parent):
        top, parent = parent, os.path.dirname(parent)
    os.makedirs(path, exist_ok=True)
    return top


def remove_created(path, top):
    """Undo `make_folders`: remove `path` (whatever is in it) and the empty folders up to `top`."""
    import shutil

    if top is None:
        return
    path = os.path.abspath(path)
    shutil.rmtree(path, ignore_errors=True)
    folder = os.path.dirname(path)
    while top != path and folder.startswith(top) and os.path.isdir(folder) and not os.listdir(folder):
        os.rmdir(folder)
        if folder == top:
            break
        folder = os.path.dirname(folder)


def check_writable_folder(path, argument):
    """`path` if it is, or can become, a folder this process can write in: checked by creating (and
    removing) a temporary folder in its nearest existing ancestor, so nothing is left behind."""
    path = os.fspath(path)
    ancestor = os.path.abspath(path)
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise NotADirectoryError(f"{argument} must be a folder; {ancestor!r} is a file. Received: {argument}={path!r}")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".write-check-", dir=ancestor))
    except OSError as error:
        raise PermissionError(f"{argument}: cannot create folders in {ancestor!r} ({error.strerror}). "
                              f"Received: {argument}={path!r}") from None
    return path


def check_output_file(path, argument):
    """`path` if a file can be written there: not a folder, in an existing folder."""
    if os.path.isdir(path):
        raise IsADirectoryError(f"{argument} must be a file path, not a folder. Received: {argument}={path!r}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{argument}: the folder {folder!r} does not exist. Received: {argument}={path!r}")
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"{argument}: the folder {folder!r} is not writable. Received: {argument}={path!r}")
    return path


@contextlib.contextmanager
def locked(path):
    """Hold an exclusive `flock` on the file `path` (created 0644, left in place) for the block, waiting while
    another process holds it. The kernel releases it when the holder exits, a kill included."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def atomic_write(path, content):
    """Write text or bytes to `path` atomically (see `atomic_save`)."""
    mode = "wb" if isinstance(content, bytes) else "w"

    def write(tmp):
        with open(tmp, mode) as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())

    return atomic_save(path, write)


def write_json(path, value):
    return atomic_write(path, json.dumps(value, indent=2) + "\n")


def read_json(path, advice="delete it to start over"):
    """The JSON value in `path`; a `CorruptFileError` naming the file (and `advice`) if it does not parse."""
    try:
        with open(path) as f:
            text = f.read()
    except UnicodeDecodeError as error:
        raise CorruptFileError(f"{path} is not a text file ({error.reason}); {advice}.") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise CorruptFileError(f"{path} is not valid JSON ({error.msg} at line {error.lineno}); {advice}.") from None
