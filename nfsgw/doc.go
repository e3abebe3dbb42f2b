// Package nfsgw is tsumiki's NFS gateway: it serves a folder of a mounted
// kernel filesystem (ext4 or xfs on the image's /dev/nbdX, or any local
// folder in the benchmark/debug mode) over NFSv3 with
// github.com/willscott/go-nfs, over a go-billy filesystem of ours (FS).
// Only cmd/tsumiki imports it.
//
// # Pieces
//
//   - FS: the billy filesystem. POSIX as a Linux client expects it:
//     billy.Change (chmod, chown, utimes), truncate, rename(2) semantics
//     (a directory replaces an empty directory), hard links, symlinks stored
//     as given (absolute targets too), mkfifo and mknod. It never follows a
//     symlink and never leaves the folder (openat2 RESOLVE_BENEATH).
//   - Handler: the go-nfs Handler. File handles carry the kernel's own
//     handle (name_to_handle_at, i.e. inode and generation on ext4/xfs)
//     and, for a non-directory, its directory's (handle.go), resolved with
//     open_by_handle_at and /proc/self/fd: they survive renames of any
//     parent and a gateway restart, are a multiple of 4 bytes and at most
//     64, and a handle of a deleted file answers NFS3ERR_STALE. A file
//     whose dentry left the kernel's cache comes back disconnected; it is
//     found again in its directory, or (moved since) by a bounded search
//     of the tree. This replaces go-nfs's in-memory CachingHandler. It
//     needs CAP_DAC_READ_SEARCH (root). FSSTAT reports the filesystem's
//     real size and free space.
//   - Server: the RPC front on the NFS port (TCP; MOUNT also over UDP), a
//     MOUNT v1-3 service, and a portmapper (PMAP v2 GETPORT and DUMP over
//     TCP and UDP) on its own port (111 for a plain `mount -t nfs`). It
//     serves the data path itself (READ, WRITE, COMMIT) from an open-file
//     cache (openfiles.go): descriptors opened by file handle
//     (open_by_handle_at) and kept between calls, at most 256, each closed
//     after 5 s unused and all on Close. go-nfs v0.0.4 opened and closed
//     the file around every READ and WRITE (and FS's File fsynced on each
//     close) and encoded replies with reflection.
//
// # Durability
//
// By default every WRITE the gateway acknowledges is durable before the
// reply: it is synced (fsync) and answered FILE_SYNC, whatever stability
// the client asked for. An export with UnstableWrites (YAML
// unstable_writes: true) follows NFSv3's contract instead, as knfsd and
// nfs-ganesha do by default, which is faster for big sequential writes:
//
//   - A WRITE answered FILE_SYNC is on disk: asked FILE_SYNC, the gateway
//     fsyncs the file before the reply. Asked DATA_SYNC, it fdatasyncs
//     (the data and what is needed to read it back, e.g. the size) and
//     answers DATA_SYNC. The reply never claims more than was done.
//   - A WRITE asked UNSTABLE is written to the page cache and answered
//     UNSTABLE with the write verifier; the client keeps the data until a
//     COMMIT succeeds with the same verifier. COMMIT fsyncs the file
//     (through the descriptor the WRITEs used, if still cached) and
//     answers that verifier.
//   - The verifier is random per gateway process, so after a restart every
//     client sees a new one and resends what it had not committed. A
//     failed fsync (WRITE or COMMIT) fails the call (NFS3ERR_IO for EIO;
//     NOSPC and DQUOT for those errnos) and also changes the verifier: the
//     kernel may have dropped the dirty pages and reports the error only
//     once per descriptor, so a later COMMIT could otherwise succeed
//     without them.
//   - Calls share a file's cached descriptor, so one call's fsync may be
//     told of an error about another call's data (filesync.go): a
//     successful sync waits for the syncs beside it, a FILE_SYNC or
//     DATA_SYNC WRITE fails if any of them failed, and COMMIT reads the
//     verifier only then. A WRITE's verifier is read before its data is
//     written. A descriptor holding UNSTABLE writes with no COMMIT yet is
//     synced before the cache closes it.
//
// Directory changes (create, mkdir, remove, rename, link, symlink, mknod)
// fsync the directories they change before returning, as NFSv3 requires
// of metadata operations; chmod, chown and utimes fsync the inode itself
// (a regular file or a directory; on xfs an fsync of the directory would
// not commit the change), through the descriptor they changed it by; for
// a symlink or a special file they sync the filesystem (an fsync of its
// directory, which the change did not touch, commits nothing on ext4).
// SETATTR fsyncs the file or directory it changed (see below).
//
// # What the front answers instead of go-nfs, and why
//
// go-nfs's HandleFunc takes an unexported type, so a procedure cannot be
// replaced by registering another handler; the front reads every RPC
// record first and passes to go-nfs (over an in-process pipe, one per
// client connection) only the NFS calls it does not answer itself:
//
//   - RPC version other than 2: RPC_MISMATCH (go-nfs does not check).
//   - Unknown programs: PROG_UNAVAIL; unknown procedures: PROC_UNAVAIL;
//     versions other than NFS 3, MOUNT 1-3, PMAP 2: PROG_MISMATCH with the
//     supported range. go-nfs encodes PROC_UNAVAIL as PROG_MISMATCH (its
//     ResponseCode enumeration is off by one), which breaks libnfs's
//     default mount (it asks MOUNT EXPORT) and anything probing versions.
//   - MOUNT (all of it: NULL, MNT, DUMP, UMNT, UMNTALL, EXPORT): go-nfs has
//     only NULL, MNT and UMNT, so `showmount -e` fails; and MNT must apply
//     the export rules (MNT3ERR_ACCES for a client outside the networks,
//     MNT3ERR_NOENT for an unknown path) and hand out the same kernel
//     handle as the NFS service.
//   - Portmapper: go-nfs has none.
//   - NFS calls from a client no export allows: AUTH_ERROR (AUTH_TOOWEAK);
//     credentials other than AUTH_NULL and AUTH_SYS likewise.
//   - NFS calls that change something, on a read-only export: NFS3ERR_ROFS
//     (go-nfs's own checks depend on the billy capabilities of one shared
//     filesystem, and its COMMIT answers SERVERFAULT there).
//   - LINK: go-nfs v0.0.4 decodes LINK3args in the wrong order (diropargs
//     first), so every hard link fails with EIO.
//   - MKNOD: go-nfs v0.0.4 answers OK to a character device and creates
//     nothing (an empty switch case).
//   - SYMLINK: go-nfs v0.0.4 answers ACCESS for most failures; ours
//     answers the kernel's result, and a retransmission from the reply
//     cache.
//   - READ, WRITE, COMMIT: the data path (see Pieces and Durability):
//     go-nfs opens and closes the file on every call, answers every WRITE
//     FILE_SYNC whatever was asked, and its COMMIT does not sync. Replies
//     are encoded with the package's own XDR (attr.go writes the same
//     attribute bytes as go-nfs, which the Linux client compares across
//     replies). These calls, and the ones below that change or list a
//     directory (CREATE, MKDIR, SYMLINK, MKNOD, REMOVE, RMDIR, RENAME, LINK,
//     READDIR, READDIRPLUS), run in goroutines of their own, up to 16 per
//     connection, so that an fsync or a long listing does not hold up the
//     calls behind it; the rest are answered in order.
//   - FSINFO: go-nfs advertises 1 GiB reads and writes (rtmax, wtmax);
//     ours advertises 1 MiB (what the Linux client and libnfs use), which
//     fits in the front's largest RPC record (4 MiB).
//   - REMOVE, RMDIR, RENAME: go-nfs v0.0.4 answers NFS3ERR_IO for most
//     failures (a non-empty directory, a directory given to REMOVE, a
//     directory renamed over a non-empty one) and REMOVE removes
//     directories; ours answers with the kernel's own result.
//   - ACCESS: go-nfs grants every bit to everyone; ours asks the kernel
//     (faccessat2 AT_EACCESS) as the caller.
//   - CREATE, MKDIR: go-nfs v0.0.4 truncates an existing file on an
//     UNCHECKED create (what Linux sends for open(O_CREAT) over a cached
//     negative dentry: another client's data was lost), makes GUARDED a
//     check-then-create race, refuses EXCLUSIVE, and answers OK when two
//     clients make one directory. Ours follows RFC 1813 as Linux's nfsd
//     does: one mknod or mkdir, EXIST for an existing name, an UNCHECKED
//     create keeps an existing file (only a size given is applied), and
//     EXCLUSIVE keeps the verifier in the file's times.
//   - SETATTR: go-nfs v0.0.4 resolves the handle to a path and changes
//     whatever has that name when it gets to it (a rename in between
//     made a truncate hit the file renamed over it), drops the setuid,
//     setgid and sticky bits of a mode, and turns "the server's time" into
//     an explicit time, which only the owner may set (touch by another
//     writer failed). Ours changes a regular file or directory through a
//     descriptor of the inode the handle names, as the caller, with
//     UTIME_NOW for the server's time, checks the guard, and fsyncs it; a
//     symlink or special file (which cannot be opened) is changed through
//     its O_PATH descriptor and /proc/self/fd, never by a name.
//   - READDIR, READDIRPLUS: go-nfs v0.0.4 uses an entry's index in a
//     sorted listing as its cookie, so a page read after the directory
//     changed skipped or repeated entries that existed all along (or
//     failed with BAD_COOKIE), and lists the whole directory for every
//     page. Ours uses the kernel's directory offsets as cookies, with a
//     verifier of 0, as Linux's nfsd does, and reads only what one page
//     holds.
//
// # Credentials
//
// Calls run as the caller: AUTH_SYS uid, gid and groups (after root
// squashing; AUTH_NULL runs as the export's anonymous ids). go-nfs passes
// no per-call context to the filesystem, so the front keeps one go-nfs
// server per identity, each over an FS view made with FS.As, and routes
// each call to its identity's server; FS.As runs each filesystem call on a
// locked OS thread with setgroups, setfsgid and setfsuid (thread-local raw
// syscalls), so the kernel checks permissions (a non-zero fsuid drops the
// filesystem capabilities) and new files belong to the caller. Uid 0
// without squashing runs as the gateway itself. File handles are resolved
// as the gateway (open_by_handle_at needs CAP_DAC_READ_SEARCH).
//
// READ, WRITE and COMMIT use descriptors the gateway opened (shared by all
// callers), so the check open(2) would make is made on every call
// instead, as the caller: faccessat2(fd, "", R_OK or W_OK, AT_EACCESS |
// AT_EMPTY_PATH) on that descriptor under the caller's fsuid, fsgid and
// groups runs the kernel's own permission check (mode bits, ACLs, no
// capabilities for a non-zero uid) on the same inode; a chmod takes
// effect on the next call. As knfsd does, the owner may read and write
// its file whatever the mode (a client writes a file it created 0444
// through the descriptor open(O_CREAT) gave it: git objects), and who may
// execute a file may READ it. WRITE's pwrite itself runs as the caller,
// so the kernel clears setuid and setgid bits as for any writer without
// CAP_FSETID. The check is on the file alone, not on the directories
// above it (a handle is a capability, like knfsd's with no_subtree_check,
// the default); LOOKUP still needs search permission.
//
// # Known gaps
//
// The number
// of identities (and so of go-nfs servers and per-connection pipes) is not
// bounded. go-nfs serves one call at a time per pipe, so the calls it
// answers for one client identity on one connection are served serially.
// A file that was moved and then left the dentry cache costs a tree
// search on its next use, and answers NFS3ERR_STALE if the search limit
// is reached first.
//
// The open-file cache checks that a file is in the folder when it opens
// it, not on every call: a file moved out of the folder on the server
// stays readable through a cached descriptor until it is closed (at most
// 5 s after its last use). A file deleted on the server (not through the
// gateway) answers NFS3ERR_STALE at once, but its blocks stay allocated
// until the descriptor is closed; a file kept open for writing cannot be
// executed on the server meanwhile (ETXTBSY). Attributes are go-nfs's:
// ctime and atime are sent as the mtime, and the setuid, setgid and
// sticky bits are sent in os.FileMode's positions, which clients ignore.
package nfsgw
