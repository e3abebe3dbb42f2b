# Run by TestClusterNBDClients through nbdsh against `tsumiki up`: every
# transmission command and the bad requests of issue 3, each checked for
# its reply and errno. Strict mode is off so libnbd sends what the script
# asks and the server alone judges.
import errno
import os

import nbd

URI = os.environ["NBD_URI"]
SIZE = int(os.environ["NBD_SIZE"])
MiB = 1 << 20
checks = 0


def check(cond, what):
    global checks
    checks += 1
    if not cond:
        raise AssertionError(what)


def expect_errno(want, what, f, *args):
    global checks
    checks += 1
    try:
        f(*args)
    except nbd.Error as e:
        if e.errnum != want:
            raise AssertionError("%s: errno %s (%s), want %s" % (what, e.errnum, e.string, errno.errorcode[want]))
        return
    raise AssertionError("%s: succeeded, want %s" % (what, errno.errorcode[want]))


def allocation(h, off, count):
    got = []

    def cb(ctx, o, entries, err):
        got.extend(entries)
        return 0

    h.block_status(count, off, cb)
    return got  # [length, flags, length, flags, ...]


h = nbd.NBD()
h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
h.connect_uri(URI)
h.set_strict_mode(0)
check(h.get_size() == SIZE, "size")
check(h.can_flush() and h.can_fua() and h.can_trim() and h.can_zero() and h.can_multi_conn(), "capabilities")
check(h.get_block_size(nbd.SIZE_MINIMUM) == 512, "minimum block size")
check(h.get_block_size(nbd.SIZE_PREFERRED) == 4096, "preferred block size")
check(h.get_block_size(nbd.SIZE_MAXIMUM) == 32 * MiB, "maximum block size")

# READ of a never-written range: zeros, and BLOCK_STATUS says hole+zero.
check(h.pread(64 * 1024, 8 * MiB) == bytes(64 * 1024), "hole reads zeros")
e = allocation(h, 8 * MiB, 4 * MiB)
check(e[1] & nbd.STATE_HOLE and e[1] & nbd.STATE_ZERO, "unwritten object is a hole: %r" % e)

# WRITE, with and without FUA, reads back; FLUSH.
data = os.urandom(1 * MiB)
h.pwrite(data, 16 * MiB)
h.pwrite(data[:4096], 20 * MiB, nbd.CMD_FLAG_FUA)
check(h.pread(1 * MiB, 16 * MiB) == data, "write reads back")
check(h.pread(4096, 20 * MiB) == data[:4096], "FUA write reads back")
h.flush()
e = allocation(h, 16 * MiB, 4 * MiB)
check(not (e[1] & nbd.STATE_HOLE), "written object is allocated: %r" % e)

# TRIM frees: the range reads zeros; a whole object becomes a hole.
h.pwrite(data, 24 * MiB)
h.trim(4 * MiB, 24 * MiB)
check(h.pread(1 * MiB, 24 * MiB) == bytes(MiB), "trimmed range reads zeros")
e = allocation(h, 24 * MiB, 4 * MiB)
check(e[1] & nbd.STATE_HOLE, "trimmed object is a hole: %r" % e)

# WRITE_ZEROES with and without NO_HOLE.
h.pwrite(data, 32 * MiB)
h.zero(64 * 1024, 32 * MiB)
check(h.pread(64 * 1024, 32 * MiB) == bytes(64 * 1024), "zeroed range reads zeros")
check(h.pread(4096, 32 * MiB + 64 * 1024) == data[64 * 1024:64 * 1024 + 4096], "bytes after the zeroed range kept")
h.zero(4 * MiB, 40 * MiB, nbd.CMD_FLAG_NO_HOLE)
check(h.pread(4096, 40 * MiB) == bytes(4096), "NO_HOLE zero reads zeros")
e = allocation(h, 40 * MiB, 4 * MiB)
check(not (e[1] & nbd.STATE_HOLE), "NO_HOLE keeps the range allocated: %r" % e)

# Bad requests are replies, and the connection stays usable.
expect_errno(errno.EINVAL, "read past the end", h.pread, 4096, SIZE)
expect_errno(errno.ENOSPC, "write past the end", h.pwrite, bytes(4096), SIZE)
expect_errno(errno.EINVAL, "misaligned read", h.pread, 100, 3)
expect_errno(errno.EINVAL, "misaligned write", h.pwrite, bytes(100), 7)
expect_errno(errno.EINVAL, "oversized read", h.pread, 33 * MiB, 0)
expect_errno(errno.EINVAL, "trim past the end", h.trim, 4096, SIZE)
check(h.pread(1 * MiB, 16 * MiB) == data, "connection usable after bad requests")

# A second connection sees the first one's flushed writes (multi-conn).
h2 = nbd.NBD()
h2.connect_uri(URI)
h2.pwrite(b"x" * 4096, 48 * MiB)
h2.flush()
check(h.pread(4096, 48 * MiB) == b"x" * 4096, "multi-conn: write seen through another connection")
h2.shutdown()
h.shutdown()
print("nbd_up: %d checks passed" % checks)
