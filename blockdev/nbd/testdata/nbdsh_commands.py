# Run by TestNbdshCommands through nbdsh (libnbd's Python shell): sends every
# command, and bad requests, to the server and checks each reply and errno.
# strict mode is off so that libnbd sends what the script asks and the
# server alone judges the request.
import errno
import os
import random

import nbd

URI = os.environ["NBD_URI"]
RO_URI = os.environ["NBD_RO_URI"]
MISSING_URI = os.environ["NBD_MISSING_URI"]
SIZE = int(os.environ["NBD_SIZE"])
READ_EIO = int(os.environ["NBD_READ_EIO_OFF"])
WRITE_EIO = int(os.environ["NBD_WRITE_EIO_OFF"])
WRITE_FULL = int(os.environ["NBD_WRITE_FULL_OFF"])
WRITE_ENOSPC = int(os.environ["NBD_WRITE_ENOSPC_OFF"])

KiB = 1024
MiB = 1024 * KiB
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


def connect(uri, structured=True, meta=True):
    h = nbd.NBD()
    h.set_request_structured_replies(structured)
    if meta:
        h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
    h.connect_uri(uri)
    h.set_strict_mode(0)
    return h


def extents(h, count, offset, flags=0):
    got = []

    def cb(metacontext, off, entries, err):
        check(metacontext == nbd.CONTEXT_BASE_ALLOCATION, "block status context %r" % metacontext)
        got.extend(entries)
        return 0

    h.block_status(count, offset, cb, flags)
    return [(got[i], got[i + 1]) for i in range(0, len(got), 2)]


def pattern(n, seed):
    return random.Random(seed).randbytes(n)


# --- Structured replies, base:allocation, block sizes agreed ---------------
h = connect(URI)
check(h.get_size() == SIZE, "size %d" % h.get_size())
check(h.get_structured_replies_negotiated(), "structured replies")
check(h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION), "base:allocation")
for name, ok in [("flush", h.can_flush()), ("fua", h.can_fua()), ("trim", h.can_trim()),
                 ("zero", h.can_zero()), ("multi_conn", h.can_multi_conn()), ("df", h.can_df())]:
    check(ok, "can_" + name)
check(not h.is_read_only(), "read-write export reported read-only")
check(not h.can_fast_zero(), "fast zero must not be advertised")
check(h.get_block_size(nbd.SIZE_MINIMUM) == 512, "minimum block size")
check(h.get_block_size(nbd.SIZE_PREFERRED) == 4096, "preferred block size")
check(h.get_block_size(nbd.SIZE_MAXIMUM) == 32 * MiB, "maximum block size")

# READ / WRITE / FUA / DF / FLUSH
data = pattern(1 * MiB, 3)
h.pwrite(data, 0)
check(h.pread(1 * MiB, 0) == data, "read back 1 MiB")
h.pwrite(pattern(64 * KiB, 9), 2 * MiB, nbd.CMD_FLAG_FUA)
check(h.pread(64 * KiB, 2 * MiB, nbd.CMD_FLAG_DF) == pattern(64 * KiB, 9), "FUA write, DF read")
h.pwrite(pattern(32 * MiB, 1), 4 * MiB)  # exactly the maximum
check(h.pread(32 * MiB, 4 * MiB) == pattern(32 * MiB, 1), "32 MiB read")
h.flush()
h.flush(nbd.CMD_FLAG_FUA)

# BLOCK_STATUS: written data, then holes
ext = extents(h, 8 * MiB, 0)
check(ext[0] == (1 * MiB, 0), "data extent first: %r" % ext[:3])
check(ext[1] == (1 * MiB, 3), "hole,zero after the data: %r" % ext[:3])
check(sum(l for l, _ in ext) <= 8 * MiB, "extents past the request")
one = extents(h, 8 * MiB, 0, nbd.CMD_FLAG_REQ_ONE)
check(len(one) == 1 and one[0] == (1 * MiB, 0), "REQ_ONE: %r" % one)

# TRIM: reads as zeros, reported as a hole
h.trim(64 * KiB, 0)
check(h.pread(64 * KiB, 0) == bytes(64 * KiB), "trimmed range reads zeros")
check(extents(h, 128 * KiB, 0)[0] == (64 * KiB, 3), "trim leaves a hole")

# WRITE_ZEROES with and without NO_HOLE
h.zero(64 * KiB, 128 * KiB)
check(extents(h, 64 * KiB, 128 * KiB)[0] == (64 * KiB, 3), "zero may punch a hole")
h.zero(64 * KiB, 256 * KiB, nbd.CMD_FLAG_NO_HOLE)
check(extents(h, 64 * KiB, 256 * KiB)[0] == (64 * KiB, 2), "NO_HOLE zero stays allocated")
check(h.pread(64 * KiB, 256 * KiB) == bytes(64 * KiB), "zeroed range reads zeros")
h.zero(64 * KiB, 512 * KiB, nbd.CMD_FLAG_FUA)

# Out of range: EINVAL for reads/trims/block status, ENOSPC for writes
expect_errno(errno.EINVAL, "read past end", h.pread, 4096, SIZE)
expect_errno(errno.EINVAL, "read across end", h.pread, 4096, SIZE - 512)
expect_errno(errno.ENOSPC, "write past end", h.pwrite, bytes(4096), SIZE)
expect_errno(errno.ENOSPC, "write across end", h.pwrite, bytes(4096), SIZE - 512)
expect_errno(errno.EINVAL, "trim past end", h.trim, 4096, SIZE)
expect_errno(errno.ENOSPC, "zero past end", h.zero, 4096, SIZE)
expect_errno(errno.EINVAL, "block status past end", extents, h, 4096, SIZE)

# Misaligned (block sizes were agreed), oversized, zero-length
expect_errno(errno.EINVAL, "misaligned read length", h.pread, 100, 0)
expect_errno(errno.EINVAL, "misaligned read offset", h.pread, 512, 1)
expect_errno(errno.EINVAL, "misaligned write", h.pwrite, bytes(1000), 512)
expect_errno(errno.EINVAL, "misaligned trim", h.trim, 4096, 3)
expect_errno(errno.EINVAL, "oversized read", h.pread, 33 * MiB, 0)
expect_errno(errno.EINVAL, "oversized write", h.pwrite, bytes(33 * MiB), 0)
check(h.pread(4096, 2 * MiB) == pattern(4096, 9), "connection usable after an oversized write")
expect_errno(errno.EINVAL, "zero-length read", h.pread, 0, 0)

# Flags not valid for the command, or not advertised
expect_errno(errno.EINVAL, "REQ_ONE on read", h.pread, 4096, 0, nbd.CMD_FLAG_REQ_ONE)
expect_errno(errno.EINVAL, "DF on write", h.pwrite, bytes(4096), 0, nbd.CMD_FLAG_DF)
expect_errno(errno.EINVAL, "NO_HOLE on trim", h.trim, 4096, 0, nbd.CMD_FLAG_NO_HOLE)
expect_errno(errno.EINVAL, "FAST_ZERO not advertised", h.zero, 4096, 0, nbd.CMD_FLAG_FAST_ZERO)

# Unknown command: NBD_CMD_CACHE is not supported
expect_errno(errno.EINVAL, "NBD_CMD_CACHE", h.cache, 4096, 0)

# Backend errors become errno replies, not dropped connections
expect_errno(errno.EIO, "injected read error", h.pread, 4096, READ_EIO)
expect_errno(errno.EIO, "injected write error", h.pwrite, bytes(4096), WRITE_EIO)
expect_errno(errno.ENOSPC, "backend full (nbd.ErrNoSpace)", h.pwrite, bytes(4096), WRITE_FULL)
expect_errno(errno.ENOSPC, "backend full (syscall.ENOSPC)", h.pwrite, bytes(4096), WRITE_ENOSPC)
h.pwrite(pattern(4096, 5), 8 * MiB)
check(h.pread(4096, 8 * MiB) == pattern(4096, 5), "connection usable after all the errors")

# Multi-conn: a write acknowledged on h is seen, and flushed, through h2
h2 = connect(URI)
h.pwrite(pattern(4096, 77), 9 * MiB)
h2.flush()
check(h2.pread(4096, 9 * MiB) == pattern(4096, 77), "write seen from a second connection")
h2.shutdown()
h.shutdown()

# --- Simple replies (no structured replies negotiated) ---------------------
s = connect(URI, structured=False, meta=False)
check(not s.get_structured_replies_negotiated(), "simple replies")
check(not s.can_df(), "DF needs structured replies")
check(s.pread(4096, 8 * MiB) == pattern(4096, 5), "simple read")
s.pwrite(pattern(4096, 6), 10 * MiB)
s.flush()
expect_errno(errno.EINVAL, "simple: read past end", s.pread, 4096, SIZE)
expect_errno(errno.ENOSPC, "simple: write past end", s.pwrite, bytes(4096), SIZE)
expect_errno(errno.EIO, "simple: injected read error", s.pread, 4096, READ_EIO)
expect_errno(errno.EINVAL, "simple: DF without structured replies", s.pread, 4096, 0, nbd.CMD_FLAG_DF)
expect_errno(errno.EINVAL, "simple: block status without a context", extents, s, 4096, 0)
check(s.pread(4096, 10 * MiB) == pattern(4096, 6), "simple connection usable after errors")
s.shutdown()

# --- Read-only export --------------------------------------------------------
r = connect(RO_URI)
check(r.is_read_only(), "read-only flag")
check(not r.can_trim() and not r.can_zero(), "no trim/zero on a read-only export")
check(r.pread(4096, 0) == bytes(4096), "read-only read")
r.flush()
expect_errno(errno.EPERM, "write on read-only", r.pwrite, bytes(4096), 0)
expect_errno(errno.EPERM, "trim on read-only", r.trim, 4096, 0)
expect_errno(errno.EPERM, "zero on read-only", r.zero, 4096, 0)
r.shutdown()

# --- Unknown export: NBD_OPT_GO fails, no transmission ---------------------
try:
    connect(MISSING_URI)
except nbd.Error as e:
    check(e.errnum == errno.ENOENT, "unknown export: %s" % e.string)  # NBD_REP_ERR_UNKNOWN
else:
    raise AssertionError("connecting to a missing export succeeded")

print("nbdsh: %d checks passed" % checks)
