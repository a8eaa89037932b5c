"""One training run per work dir.

Two runs in one work dir write one log and overwrite each other's ``epoch_*.pth`` and
``last_checkpoint``. A training run holds a lock on ``<work dir>/.train.lock`` while it lives; a
second run finds it held and stops, naming the holder recorded in the file. The lock is a POSIX
record lock (``lockf``): the kernel drops it when its process ends, however it ends, so the lock
file of a killed run is taken over without any clean-up, and resuming in that work dir works as
before. It is not inherited by forked data-loader workers, which may outlive a killed run.
"""
import fcntl
import os
import os.path as osp
import socket
import time
from typing import IO

from .tool_input import ToolInputError

__all__ = ['LOCK_FILE', 'WorkDirBusyError', 'hold_work_dir_lock']

LOCK_FILE = '.train.lock'


class WorkDirBusyError(ToolInputError):
    """Another live run holds the work dir."""


def hold_work_dir_lock(work_dir: str) -> IO[str]:
    """Lock ``work_dir`` for this process, creating it if needed, and return the open lock file,
    which holds the lock until it is closed or the process ends.

    Raises:
        WorkDirBusyError: another live process holds the lock; the work dir is left untouched.
    """
    path = osp.join(work_dir, LOCK_FILE)
    if osp.exists(path):
        lock = open(path, 'r+')  # noqa: SIM115 (kept open: the lock lives as long as the file)
    else:
        os.makedirs(work_dir, exist_ok=True)
        lock = open(path, 'a+')  # noqa: SIM115
    try:
        fcntl.lockf(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.seek(0)
        holder = lock.read().strip() or 'another process'
        lock.close()
        raise WorkDirBusyError(f'Work dir {work_dir} is in use by another training run ({holder}); wait for it to '
                               'end or pass another --work-dir.') from None
    lock.seek(0)
    lock.truncate()
    lock.write(f'pid {os.getpid()} on {socket.gethostname()}, started '
               f'{time.strftime("%Y-%m-%d %H:%M:%S")}')
    lock.flush()
    return lock
