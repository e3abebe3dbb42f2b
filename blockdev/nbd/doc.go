// Package nbd is tsumiki's NBD server: it serves block images to NBD
// clients (the Linux kernel through nbd-client, qemu, libnbd tools) over
// any net.Listener or net.Conn.
//
// The package declares what it serves, Export, and how it finds it,
// Opener; it imports nothing of tsumiki. cmd/tsumiki adapts blockdev/image
// to these interfaces for `tsumiki nbd serve`, and blockdev/attach runs a
// Server on a socketpair for `tsumiki map`. Only those two (and tests) may
// import it. Wire constants and structs come from go-nbd's protocol
// package where it has them (protocol.go adds the rest); go-nbd's own
// server is not used (DESIGN.md, decision 6).
//
// # Protocol
//
// Fixed-newstyle negotiation with NBD_OPT_EXPORT_NAME, NBD_OPT_LIST,
// NBD_OPT_INFO, NBD_OPT_GO (NBD_INFO_EXPORT, NBD_INFO_NAME,
// NBD_INFO_DESCRIPTION, NBD_INFO_BLOCK_SIZE), NBD_OPT_ABORT,
// NBD_OPT_STRUCTURED_REPLY, NBD_OPT_LIST_META_CONTEXT and
// NBD_OPT_SET_META_CONTEXT (base:allocation); other options get
// NBD_REP_ERR_UNSUP. Transmission flags: HAS_FLAGS, SEND_FLUSH, SEND_FUA,
// CAN_MULTI_CONN, SEND_TRIM and SEND_WRITE_ZEROES (read-write exports),
// READ_ONLY (read-only exports), SEND_DF (with structured replies).
// Commands: READ, WRITE, FLUSH, TRIM, WRITE_ZEROES (with and without
// NO_HOLE), BLOCK_STATUS (REQ_ONE), DISC; the FUA flag on any command.
//
// Requests are pipelined: one reader takes requests off the socket without
// waiting, up to Config.MaxInFlight requests and Config.MaxInFlightBytes of
// payload run at once, replies go out in completion order through one
// writer. A failed or invalid request is answered with an error value
// (EIO, ENOSPC, EPERM, EINVAL, ESHUTDOWN; see nbdErrno) and the connection
// goes on. Only a broken stream (bad magic, truncated message, unknown
// client flags, unknown export with NBD_OPT_EXPORT_NAME) closes a
// connection, and only that one.
//
// # Deviations from the specification, and choices it leaves open
//
//   - READ and WRITE longer than Config.MaxBlockSize (32 MiB) fail with
//     EINVAL even when the client did not ask for block size constraints
//     (the spec says a server SHOULD then accept any length). An oversized
//     WRITE's payload is read and discarded, whatever its length (at most
//     4 GiB), so the connection stays in sync; it is never buffered.
//   - Offsets and lengths must be multiples of the minimum block size only
//     when the client asked for NBD_INFO_BLOCK_SIZE in NBD_OPT_GO, as the
//     spec says; other clients may send any alignment. NBD_INFO_BLOCK_SIZE
//     is sent whether asked for or not.
//   - Zero-length READ, WRITE, TRIM, WRITE_ZEROES and BLOCK_STATUS fail with
//     EINVAL; FLUSH with a nonzero offset or length fails with EINVAL.
//   - FLUSH waits for every write-type request received before it on the
//     same connection, not only those already answered, then calls
//     Export.Flush. FUA is not forwarded unless Config.FlushOnFUA is set:
//     tsumiki's writes are durable when they return.
//   - Reads are answered with one NBD_REPLY_TYPE_OFFSET_DATA chunk; holes
//     are never sent as NBD_REPLY_TYPE_OFFSET_HOLE (clients find holes with
//     BLOCK_STATUS). That is why NBD_CMD_FLAG_DF is always honoured.
//   - BLOCK_STATUS answers never reach past the requested range and may
//     cover less of it: at most 65536 descriptors, cut at the first inner
//     boundary the Export reports that is not a multiple of the minimum
//     block size.
//   - NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT do not look
//     the export name up (the one context exists for every export); an
//     unknown name fails at NBD_OPT_GO. Contexts set for another name than
//     the one NBD_OPT_GO opens are dropped.
//   - Not supported: TLS (NBD_OPT_STARTTLS gets NBD_REP_ERR_UNSUP), extended
//     headers, NBD_CMD_CACHE, FAST_ZERO, resize, OFFSET_HOLE, oldstyle
//     negotiation. A client without NBD_FLAG_C_FIXED_NEWSTYLE may only send
//     NBD_OPT_EXPORT_NAME; anything else closes the connection.
//   - Option data longer than 64 KiB is read, discarded and answered with
//     NBD_REP_ERR_TOO_BIG. The whole negotiation must end within
//     Config.HandshakeTimeout. On shutdown a connection still negotiating
//     is closed rather than answered with NBD_REP_ERR_SHUTDOWN.
//   - An Opener error other than "not found" (NBD_REP_ERR_UNKNOWN) or
//     "refused" (NBD_REP_ERR_POLICY) is reported as NBD_REP_ERR_UNKNOWN
//     with the error's text: the protocol has no generic failure code.
//   - A panic in the Export is recovered, logged and answered with EIO.
//   - Only NBD_CMD_DISC lets the requests in flight run to their end. A
//     connection that ends otherwise (EOF without DISC, which the spec
//     calls abrupt, a socket error, a protocol violation) cancels the
//     context of its Export calls in flight, and closes its Export once
//     they have returned: a client that resends unanswered writes on
//     another connection must not have the old copies land after newer
//     writes.
//
// # Lifecycle and concurrency
//
// NewServer starts nothing. Serve and ServeConn run until their context
// is cancelled; then every connection stops reading, answers (or, within
// Config.ShutdownTimeout, gives up on) the requests in flight, closes its
// Export and its socket, and Serve returns once all are gone.
package nbd
