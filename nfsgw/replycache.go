package nfsgw

import (
	"container/list"
	"hash/crc32"
	"net/netip"
	"sync"
	"time"
)

// replyCache is the duplicate request cache (Linux's nfsd has one too). A
// client that gets no reply sends the same call again, with the same xid:
// after a timeout, or over a new connection after the old one broke. Done
// twice, a call that is not idempotent answers wrongly (a MKDIR or CREATE
// GUARDED "exists", a REMOVE or RENAME "no such file") or does harm: a
// retransmitted truncate or WRITE can land after another client's
// acknowledged write over the same range. The cache answers a copy of a
// call that is still running with that call's reply once it ends, and a
// copy of a finished call with its stored reply; neither runs twice.
//
// Calls are matched as nfsd matches them: client address and port (Linux
// clients reconnect from the same port), xid, procedure, argument length
// and a checksum of the first drcSumLen bytes. Replies are kept for
// drcKeep, at most drcMax of them (about 20 MiB; past about 500 changing
// calls a second the oldest go sooner); the cache does not survive a
// restart of the gateway, as nfsd's does not. A connection whose peer
// address is unknown is not cached.
type replyCache struct {
	now func() time.Time
	max int
	ttl time.Duration

	mu      sync.Mutex // guards the following
	entries map[drcKey]*drcEntry
	done    list.List // of *drcEntry that finished, oldest first
}

const (
	drcMax    = 65536
	drcKeep   = 2 * time.Minute
	drcSumLen = 256
)

// drcKey identifies one call.
type drcKey struct {
	client netip.AddrPort
	xid    uint32
	proc   uint32
	n      int    // argument length
	sum    uint32 // CRC-32C of the first drcSumLen argument bytes
}

// drcEntry is one call: running until done is closed, then reply holds
// its RPC reply (without the record mark).
type drcEntry struct {
	key   drcKey
	done  chan struct{}
	reply []byte
	at    time.Time     // when it finished
	elem  *list.Element // in replyCache.done once finished
}

var drcTable = crc32.MakeTable(crc32.Castagnoli)

func newReplyCache(now func() time.Time) *replyCache {
	return &replyCache{now: now, max: drcMax, ttl: drcKeep, entries: map[drcKey]*drcEntry{}}
}

// cachedProc reports whether proc's replies are cached: the calls that
// change something (READ, COMMIT and the lookups are safe to run again).
func cachedProc(proc uint32) bool {
	switch proc {
	case nfsProcSetattr, nfsProcWrite, nfsProcCreate, nfsProcMkdir, nfsProcSymlink, nfsProcMknod,
		nfsProcRemove, nfsProcRmdir, nfsProcRename, nfsProcLink:
		return true
	}
	return false
}

func keyOf(client netip.AddrPort, xid, proc uint32, args []byte) drcKey {
	return drcKey{client: client, xid: xid, proc: proc, n: len(args), sum: crc32.Checksum(args[:min(len(args), drcSumLen)], drcTable)}
}

// begin looks k up. A new call is entered as running (dup false): the
// caller runs it and then calls finish. For a call already known, dup is
// true and the caller waits for e.done and sends e.reply.
func (c *replyCache) begin(k drcKey) (e *drcEntry, dup bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expireLocked()
	if e := c.entries[k]; e != nil {
		return e, true
	}
	e = &drcEntry{key: k, done: make(chan struct{})}
	c.entries[k] = e
	return e, false
}

// finish stores a copy of e's reply and wakes its duplicates.
func (c *replyCache) finish(e *drcEntry, reply []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.reply = append([]byte(nil), reply...)
	e.at = c.now()
	e.elem = c.done.PushBack(e)
	close(e.done)
	c.expireLocked()
}

// abandon forgets e, a call that will not run (the server is stopping);
// its copies waiting get no reply.
func (c *replyCache) abandon(e *drcEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, e.key)
	close(e.done)
}

// expireLocked drops finished entries past ttl or beyond max. Running
// calls are never dropped: a copy arriving meanwhile must not run too.
func (c *replyCache) expireLocked() {
	cut := c.now().Add(-c.ttl)
	for f := c.done.Front(); f != nil; f = c.done.Front() {
		e := f.Value.(*drcEntry)
		if c.done.Len() <= c.max && e.at.After(cut) {
			return
		}
		c.done.Remove(f)
		delete(c.entries, e.key)
	}
}
