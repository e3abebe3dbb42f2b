// Package image provides tsumiki's block images: thin, striped byte arrays
// stored as objects in a pool, with their header and directory in the
// control plane (etcd) and an exclusive lock per image.
//
// # Control-plane keys
//
// Under the cluster's etcd prefix (default "/tsumiki"):
//
//	<prefix>/images/<pool>/<name>  the image header, JSON (Header). Created
//	                               in one etcd transaction that refuses an
//	                               existing key (ErrExists); changed only by
//	                               the lock holder, with a transaction that
//	                               checks both the header's revision and
//	                               that the lock key is still on the
//	                               holder's lease.
//	<prefix>/locks/<pool>/<name>   the exclusive lock: a key on the holder's
//	                               etcd lease whose value describes the
//	                               holder (Holder: host, pid, address).
//
// # Data objects
//
// Image bytes are striped over objects (package stripe) named
// "<image id>.<object number as 16 hex digits>" in the image's pool. Images
// are thin: an object exists only once something was written to it, ranges
// never written read as zeros and use no space, and trimming or zeroing a
// whole object deletes it. No object holds data past the image size.
//
// # The exclusive lock and its limits (self-fencing)
//
// A writable Open takes the lock: it grants an etcd lease (Config.LockTTL)
// and creates the lock key on it, refusing with ErrLocked (a *LockedError
// naming the holder) if another holder has it. Image.Run keeps the lease
// alive and watches the key. The holder fences itself: it refuses every
// further read and write with ErrFenced, and cancels the retries of object
// operations in flight, as soon as any of these happens:
//   - the lock key is deleted or taken over (BreakLock, or an operator
//     deleting it), seen through the watch;
//   - etcd says the lease is gone;
//   - its lease may have expired: a renewal sent at t gives a deadline of
//     t + 4/5 of the TTL, checked before every object operation and by a
//     timer, whether or not etcd can be reached (so a holder cut off from
//     etcd stops within the TTL, before anyone else can take the lock).
//
// BreakLock deletes the holder's key and revokes its lease; Open with
// OpenOptions.BreakLock then waits the old lease's full TTL before it takes
// the lock, so that a holder that is alive but cut off from etcd has passed
// its own deadline before the new holder writes.
//
// The storage enforces the holder's deadline too: every object operation
// carries it as its fence (client.WithFence), and an OSD proposes a write
// only before that fence, less a margin, counting from when the request
// was sent (wire.Request.Sent and Budget, measured against the OSD's own
// clock). So a write the old holder sent before it fenced itself, and
// that the network, a socket buffer or a stalled OSD delayed, is refused
// rather than landing after the new holder's writes; so is one from a
// holder that was frozen (SIGSTOP, a paused VM) and resumed. What it does
// not cover: clocks that run at very different rates on the two hosts
// shorten the margin. There is no fencing token in the objects themselves
// (no object epochs yet). Header changes (resize, remove) are fenced
// by etcd itself and are safe in every case.
//
// # Concurrency
//
// A Store and an Image are safe for concurrent use. An Image bounds the
// object operations it has in flight (Config.MaxInFlight), across all
// calls. Writes, zeroes and trims that overlap apply in the order they
// started: one starts its object IO only once the earlier overlapping ones
// of the same Image have returned, and an object operation returns only
// once it can no longer land. So a write whose caller gave up (an NBD
// connection that dropped) cannot land after a later write of the same
// range, such as the client's resent copy. Mutations that do not overlap
// run concurrently; reads are not ordered. Between two holders of the lock
// (after BreakLock) fencing applies instead. A read-only Image takes no lock and sees the size it was opened
// with.
//
// Who may import it: cmd/tsumiki (which adapts an Image to the NBD
// server's Export), blockdev/attach, nfsgw and tests; blockdev/nbd itself
// does not. It imports storage/client (the object store) and blockdev/stripe,
// never storage/osd, storage/chunkstore or storage/mon (internal/deps
// checks this).
package image
