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
//     TCP and UDP) on its own port (111 for a plain `mount -t nfs`).
//
// # Durability
//
// Every WRITE that the gateway acknowledges is durable before the reply:
// go-nfs opens and closes the file around each WRITE and answers
// FILE_SYNC; FS's File fsyncs on Close, so the reply is only sent after
// the fsync (an fsync error fails the WRITE). Directory changes (create,
// mkdir, remove, rename, link, symlink, mknod) fsync the directories they
// change before returning, as NFSv3 requires of metadata operations;
// chmod, chown and utimes fsync the directory, which on ext4 and xfs
// commits the journal holding the inode change. COMMIT fsyncs the file. The write verifier is random per process, so a
// client that did send UNSTABLE writes resends them after a restart.
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
//   - COMMIT: go-nfs answers OK without syncing; ours fsyncs the file.
//   - REMOVE, RMDIR, RENAME: go-nfs v0.0.4 answers NFS3ERR_IO for most
//     failures (a non-empty directory, a directory given to REMOVE, a
//     directory renamed over a non-empty one) and REMOVE removes
//     directories; ours answers with the kernel's own result.
//   - ACCESS: go-nfs grants every bit to everyone; ours asks the kernel
//     (faccessat2 AT_EACCESS) as the caller.
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
// # Known gaps
//
// Errors that go-nfs itself maps (CREATE, MKDIR, SYMLINK, SETATTR, WRITE)
// may come back as a coarser status than the kernel's. The number
// of identities (and so of go-nfs servers and per-connection pipes) is not
// bounded. go-nfs serves one call at a time per pipe, so one client
// identity on one connection is served serially. A file that was moved
// and then left the dentry cache costs a tree search on its next use, and
// answers NFS3ERR_STALE if the search limit is reached first.
package nfsgw
