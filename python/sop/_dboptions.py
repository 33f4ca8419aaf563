"""DatabaseOptions: type checks, and the options file behind Database.setup
and Database.get_options.

The file is ``sop.options.json`` in the database folder:

    {"format": "sop.database-options", "version": 1,
     "options": {...DatabaseOptions fields...}, "crc32": <zlib.crc32>}

where crc32 is taken over the canonical JSON of "options" (sorted keys, no
spaces).  It is written once, atomically: a temporary file in the folder is
written and fsync'ed, then linked to the final name (so of two concurrent
setups exactly one wins, and a reader never sees half a file), and the folder
is fsync'ed.  Reading a damaged file raises sop.CorruptionError, a newer
version sop.FormatVersionError.  The engine ignores the file.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import uuid
import zlib
from enum import Enum
from typing import Any, Dict, List, NoReturn, Optional

from . import _sop
from .transaction import DatabaseOptions, DatabaseType, ErasureCodingConfig, RedisCacheConfig

OPTIONS_FILE = "sop.options.json"
FORMAT = "sop.database-options"
VERSION = 1
_MAX_FILE = 1 << 20  # an options file is a few hundred bytes


def _invalid(msg: str) -> NoReturn:
    _sop.raise_error(_sop.SOP_INVALID, msg)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def folder_path(p: Any, what: str = "stores_folders") -> str:
    """A database folder given as str, bytes or os.PathLike, checked and made
    absolute.  Empty or NUL-containing paths raise InvalidArgumentError
    (before os.path.abspath would turn "" into the current directory)."""
    if not isinstance(p, (str, bytes, os.PathLike)):
        _invalid(f"{what}: a folder is a str, bytes or os.PathLike, not {type(p).__name__}")
    try:
        p = os.fsdecode(os.fspath(p))
    except (TypeError, UnicodeError) as e:
        _invalid(f"{what}: bad folder path ({e})")
    if not p:
        _invalid(f"{what}: the folder path is empty")
    if "\0" in p:
        _invalid(f"{what}: the folder path {p!r} contains a NUL character")
    try:
        os.fsencode(p)  # a lone surrogate cannot name a file
    except UnicodeError as e:
        _invalid(f"{what}: bad folder path {p!r} ({e})")
    return os.path.abspath(p)


def make_folder(folder: str) -> None:
    """Create folder (and its parents) if needed, with an error that names
    the real cause (a symlink loop, a file in the way, ...)."""
    try:
        os.makedirs(folder, exist_ok=True)
        return
    except OSError as e:
        err = e
    # makedirs reports "File exists" for anything in the way that is not a
    # directory; stat says what it is (ELOOP for a symlink loop, ENOENT for
    # a dangling link, ENOTDIR for a file on the way).
    why = err.strerror or str(err)
    if err.errno == errno.EEXIST:
        try:
            os.stat(folder)
            why = "it exists and is not a directory"
        except OSError as e2:
            why = e2.strerror or str(e2)
            if os.path.islink(folder):
                why += " (it is a symbolic link)"
    try:
        _sop.raise_error(_sop.SOP_IOERR, f"cannot create the database folder {folder!r}: {why}")
    except _sop.Error as exc:
        raise exc from err


def check_options(o: Any) -> None:
    """Type checks of a DatabaseOptions (InvalidArgumentError naming the
    field), so that bad values never reach json or os.path as raw errors."""
    if not isinstance(o, DatabaseOptions):
        raise TypeError(f"expected a sop.DatabaseOptions, not {type(o).__name__}")
    t = o.type
    if not isinstance(t, DatabaseType) and not (_is_int(t) and t in (0, 1)) and t is not None:
        _invalid(f"DatabaseOptions.type must be a DatabaseType (or 0, 1), not {t!r}")
    ec = o.erasure_config
    if ec is not None:
        if not isinstance(ec, dict):
            _invalid("DatabaseOptions.erasure_config must be a dict of str -> "
                     f"ErasureCodingConfig, not {type(ec).__name__}")
        for k, v in ec.items():
            if not isinstance(k, str) or not isinstance(v, ErasureCodingConfig):
                _invalid("DatabaseOptions.erasure_config must map str to ErasureCodingConfig, "
                         f"found {type(k).__name__} -> {type(v).__name__}")
    f = o.stores_folders
    if f is not None and not isinstance(f, (str, bytes, os.PathLike, list, tuple)):
        _invalid("DatabaseOptions.stores_folders must be a list of folder paths, "
                 f"not {type(f).__name__}")
    if o.keyspace is not None and not isinstance(o.keyspace, str):
        _invalid(f"DatabaseOptions.keyspace must be a str or None, not {type(o.keyspace).__name__}")
    if not _is_int(o.registry_hash_mod):
        _invalid("DatabaseOptions.registry_hash_mod must be an int, not "
                 f"{type(o.registry_hash_mod).__name__}")
    if not -(1 << 63) <= o.registry_hash_mod < (1 << 63):
        _invalid("DatabaseOptions.registry_hash_mod must fit in 64 bits")
    if o.redis_config is not None and not isinstance(o.redis_config, RedisCacheConfig):
        _invalid("DatabaseOptions.redis_config must be a RedisCacheConfig or None, not "
                 f"{type(o.redis_config).__name__}")


def folders_of(o: DatabaseOptions) -> List[str]:
    """The stores_folders of o, each checked and absolute."""
    f = o.stores_folders
    if f is None:
        return []
    seq: List[Any] = [f] if isinstance(f, (str, bytes, os.PathLike)) else list(f)
    return [folder_path(p, f"stores_folders[{i}]") for i, p in enumerate(seq)]


# ---- the file --------------------------------------------------------------

def _to_dict(o: DatabaseOptions, folders: List[str]) -> Dict[str, Any]:
    t = o.type
    ec = o.erasure_config
    rc = o.redis_config
    return {
        "type": t.value if isinstance(t, Enum) else (0 if t is None else t),
        "erasure_config": None if ec is None else {
            k: {"data_shards_count": v.data_shards_count,
                "parity_shards_count": v.parity_shards_count,
                "base_folder_paths_across_drives": list(v.base_folder_paths_across_drives or []),
                "repair_corrupted_shards": bool(v.repair_corrupted_shards)}
            for k, v in ec.items()},
        "stores_folders": folders,
        "keyspace": o.keyspace,
        "registry_hash_mod": o.registry_hash_mod,
        "redis_config": None if rc is None else {
            "address": rc.address, "password": rc.password, "db": rc.db, "url": rc.url},
    }


def _canonical(d: Dict[str, Any]) -> bytes:
    return json.dumps(d, sort_keys=True, separators=(",", ":")).encode("utf-8")


def encode(o: DatabaseOptions, folders: List[str]) -> bytes:
    opts = _to_dict(o, folders)
    doc = {"format": FORMAT, "version": VERSION, "options": opts,
           "crc32": zlib.crc32(_canonical(opts))}
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _corrupt(path: str, why: str) -> NoReturn:
    _sop.raise_error(_sop.SOP_CORRUPT, f"database options file {path!r} is damaged: {why} "
                                       "(remove it and run Database.setup again)")


def _from_dict(d: Any, path: str) -> DatabaseOptions:
    def need(cond: bool, why: str) -> None:
        if not cond:
            _corrupt(path, why)

    need(isinstance(d, dict), "\"options\" is not an object")
    known = {"type", "erasure_config", "stores_folders", "keyspace", "registry_hash_mod",
             "redis_config"}
    need(set(d) <= known, f"unknown option fields {sorted(set(d) - known)}")
    t = d.get("type", 0)
    need(_is_int(t) and t in (0, 1), f"type {t!r} is not 0 or 1")
    folders = d.get("stores_folders")
    need(folders is None or (isinstance(folders, list)
                             and all(isinstance(p, str) and p for p in folders)),
         "stores_folders is not a list of paths")
    ks = d.get("keyspace")
    need(ks is None or isinstance(ks, str), "keyspace is not a string")
    hm = d.get("registry_hash_mod", -1)
    need(_is_int(hm), "registry_hash_mod is not an int")
    ec = d.get("erasure_config")
    ec_out: Optional[Dict[str, ErasureCodingConfig]] = None
    if ec is not None:
        need(isinstance(ec, dict), "erasure_config is not an object")
        ec_out = {}
        for k, v in ec.items():
            need(isinstance(v, dict)
                 and _is_int(v.get("data_shards_count"))
                 and _is_int(v.get("parity_shards_count"))
                 and isinstance(v.get("base_folder_paths_across_drives"), list)
                 and all(isinstance(p, str) for p in v["base_folder_paths_across_drives"])
                 and isinstance(v.get("repair_corrupted_shards", False), bool),
                 f"erasure_config[{k!r}] is malformed")
            ec_out[k] = ErasureCodingConfig(v["data_shards_count"], v["parity_shards_count"],
                                            list(v["base_folder_paths_across_drives"]),
                                            v.get("repair_corrupted_shards", False))
    rc = d.get("redis_config")
    rc_out: Optional[RedisCacheConfig] = None
    if rc is not None:
        need(isinstance(rc, dict) and isinstance(rc.get("address", ""), str)
             and isinstance(rc.get("password", ""), str) and _is_int(rc.get("db", 0))
             and isinstance(rc.get("url", ""), str), "redis_config is malformed")
        rc_out = RedisCacheConfig(rc.get("address", ""), rc.get("password", ""),
                                  rc.get("db", 0), rc.get("url", ""))
    return DatabaseOptions(type=DatabaseType(t), erasure_config=ec_out,
                           stores_folders=list(folders) if folders is not None else None,
                           keyspace=ks, registry_hash_mod=hm, redis_config=rc_out)


def decode(data: bytes, path: str) -> DatabaseOptions:
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        _corrupt(path, f"not JSON ({e})")
    except RecursionError:
        _corrupt(path, "nested too deeply to be an options file")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        _corrupt(path, "not a sop database options file")
    v: Any = doc.get("version")
    if not _is_int(v) or v < 1:
        _corrupt(path, f"bad version {v!r}")
    if v > VERSION:
        _sop.raise_error(_sop.SOP_VERSION, f"database options file {path!r} has version {v}; "
                                           f"this sop reads version {VERSION}")
    opts = doc.get("options")
    crc = doc.get("crc32")
    if not isinstance(opts, dict) or not _is_int(crc):
        _corrupt(path, "\"options\" or \"crc32\" missing")
    if zlib.crc32(_canonical(opts)) != crc:
        _corrupt(path, "checksum mismatch")
    return _from_dict(opts, path)


def _io_error(what: str, path: str, e: OSError) -> NoReturn:
    try:
        _sop.raise_error(_sop.SOP_IOERR, f"{what} {path!r}: {e.strerror or e}")
    except _sop.Error as exc:
        raise exc from e


def read(folder: str) -> Optional[DatabaseOptions]:
    """The options saved in folder, or None when it has no options file."""
    path = os.path.join(folder, OPTIONS_FILE)
    try:
        if not stat.S_ISDIR(os.stat(folder).st_mode):
            _sop.raise_error(_sop.SOP_IOERR, f"{folder!r} is not a folder")
    except FileNotFoundError:
        return None
    except OSError as e:
        _io_error("cannot look at", folder, e)
    try:
        # non-blocking: a FIFO under the file's name must not hang the open
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except OSError as e:
        _io_error("cannot open", path, e)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            _corrupt(path, "not a regular file")
        os.set_blocking(fd, True)
    except OSError as e:
        os.close(fd)
        _io_error("cannot look at", path, e)
    try:
        chunks = []
        total = 0
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            total += len(b)
            if total > _MAX_FILE:
                _corrupt(path, f"larger than {_MAX_FILE} bytes")
            chunks.append(b)
    except OSError as e:
        _io_error("cannot read", path, e)
    finally:
        os.close(fd)
    return decode(b"".join(chunks), path)


def _fsync_dir(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno != errno.EINVAL:  # some filesystems cannot fsync folders
            raise
    finally:
        os.close(fd)


def write_new(folder: str, data: bytes) -> bool:
    """Write the options file unless there is one: True if written, False if
    a file was there already (it is left as is)."""
    final = os.path.join(folder, OPTIONS_FILE)
    tmp = os.path.join(folder, f".{OPTIONS_FILE}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                     0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, final)  # atomic, and fails if the file exists
            created = True
        except FileExistsError:
            created = False
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
            # no hard links here: fall back to rename (last writer wins)
            created = not os.path.exists(final)
            if created:
                os.replace(tmp, final)
        _fsync_dir(folder)
        return created
    except OSError as e:
        _io_error("cannot write", final, e)
        raise  # not reached
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass
