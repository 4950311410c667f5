#!/usr/bin/python3
"""A host's held-up view of a lab LUN (vzfs-lab, `Lab::present_held`).

A passthrough FUSE filesystem that shows one file, IMAGE, as MOUNTPOINT/NAME
(NAME = IMAGE's file name). A loop device over that file is a host's view of
the LUN: its reads and writes reach IMAGE, the file every other host's loop
device is bound to, so the LUN stays one disk.

While the file PAUSE exists, every write is held: the FUSE request is not
answered until PAUSE is removed, as a path whose I/O is suspended (what
`dmsetup suspend` does on a device-mapper device) holds the writer's I/O.
Reads go on. SIGTERM (or the FUSE filesystem unmounted) ends the daemon;
writes still held then fail with ENOTCONN in the kernel.

The mount uses direct_io: nothing is cached on the host's side, every read
and write of the loop device is a FUSE request that reaches IMAGE.

Usage: held-fuse.py IMAGE MOUNTPOINT PAUSE
Needs Debian's python3-fusepy (module `fusepy`) and libfuse2; runs as root.
"""

import errno
import os
import stat
import sys
import threading
import time

try:
    from fusepy import FUSE, FuseOSError, Operations
except ImportError:  # fusepy from PyPI installs the module as `fuse`
    from fuse import FUSE, FuseOSError, Operations


class Held(Operations):
    def __init__(self, image, pause):
        self.image = image
        self.name = "/" + os.path.basename(image)
        self.pause = pause
        self.fd = os.open(image, os.O_RDWR)
        self.lock = threading.Lock()

    def _is(self, path):
        if path != self.name:
            raise FuseOSError(errno.ENOENT)

    def getattr(self, path, fh=None):
        if path == "/":
            return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2}
        self._is(path)
        st = os.fstat(self.fd)
        return {
            "st_mode": stat.S_IFREG | 0o600,
            "st_nlink": 1,
            "st_size": st.st_size,
            "st_mtime": st.st_mtime,
            "st_ctime": st.st_ctime,
            "st_atime": st.st_atime,
        }

    def readdir(self, path, fh):
        return [".", "..", self.name[1:]]

    def open(self, path, flags):
        self._is(path)
        return 0

    def read(self, path, size, offset, fh):
        self._is(path)
        return os.pread(self.fd, size, offset)

    def write(self, path, data, offset, fh):
        self._is(path)
        # Held while PAUSE exists: the writer (the host's loop device, its
        # kernel's kmmpd behind it) waits for this answer.
        while os.path.exists(self.pause):
            time.sleep(0.01)
        return os.pwrite(self.fd, data, offset)

    def truncate(self, path, length, fh=None):
        raise FuseOSError(errno.EPERM)

    def flush(self, path, fh):
        return 0

    def fsync(self, path, datasync, fh):
        self._is(path)
        os.fsync(self.fd)
        return 0

    def release(self, path, fh):
        return 0


def main():
    if len(sys.argv) != 4:
        sys.stderr.write("usage: held-fuse.py IMAGE MOUNTPOINT PAUSE\n")
        return 2
    image, mnt, pause = sys.argv[1:]
    FUSE(
        Held(image, pause),
        mnt,
        foreground=True,
        nothreads=False,
        direct_io=True,
        fsname="vzfs-lab-held",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
