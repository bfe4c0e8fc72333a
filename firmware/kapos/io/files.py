"""Files replaced whole or overwritten in place, durably: what a power cut leaves is the
old content or the new, never half of one.

    atomic_write(path, data, mode)   temp file, fsync, rename over `path`, fsync the directory
    overwrite_in_place(path, data)   the same inode and blocks (crypto-erase of a key file)
    fsync_directory(directory)       a rename or unlink in it made durable

Used by the key store, the technician lock, the management password file, the software
update's state files and the host's key file.
"""

import os


def temporary_name(path):
    """Where atomic_write() writes before its rename."""
    return "%s.tmp-%d" % (path, os.getpid())


def atomic_write(path, data, mode=0o600):
    """Temp file, fsync, rename, fsync the directory: the old or the new, never half. A
    stale temp file (or a link planted at its name) is removed, never written through."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = temporary_name(path)
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        view, written = memoryview(data), 0
        while written < len(view):  # (a write may take less than all of it)
            written += os.write(fd, view[written:])
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    fsync_directory(directory)


def fsync_directory(directory):
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def overwrite_in_place(path, data):
    """Write `data` over the start of an existing file (same inode), then fsync it."""
    fd = os.open(path, os.O_WRONLY)
    try:
        written = 0
        while written < len(data):
            written += os.pwrite(fd, data[written:], written)
        os.fsync(fd)
    finally:
        os.close(fd)
