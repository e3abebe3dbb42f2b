package nfsgw

import (
	"container/list"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Defaults of the open-file cache.
const (
	// maxOpenFiles bounds the descriptors the cache keeps open.
	maxOpenFiles = 256
	// openFileIdle is how long an unused descriptor stays open.
	openFileIdle = 5 * time.Second
)

// openFiles keeps descriptors of regular files open between READ, WRITE
// and COMMIT calls, keyed by file handle and open mode (go-nfs opened,
// fsynced and closed the file around every call). Descriptors are opened
// as the gateway (FS.openRegular); every call checks the caller's
// permission itself. At most max descriptors stay open (least recently
// used first out), each closed after idle without use, all closed by
// closeAll. A descriptor in use when it leaves the cache is closed by its
// last release. Safe for concurrent use.
//
// The cache never hides a deletion: the caller fstats the descriptor on
// every call and answers NFS3ERR_STALE (and calls forget) when the file
// has no link left, and REMOVE and RENAME through the gateway drop the
// replaced inode (forgetInode) so that its space is freed at once. It
// does hide a move out of the folder by someone on the server (the
// descriptor stays usable until it is closed), as knfsd without
// subtree_check does.
type openFiles struct {
	open func(fh []byte, flags int) (int, *unix.Stat_t, error)
	now  func() time.Time
	max  int
	idle time.Duration
	// fsync syncs a descriptor (syncFD; tests inject failures), and
	// syncFailed hears of every failed sync (Server.resetVerifier).
	fsync      func(fd int, dataOnly bool) error
	syncFailed func(error)

	mu      sync.Mutex // guards the following
	entries map[openKey]*openFile
	lru     list.List // of *openFile, most recently used first
	closed  bool
}

// openKey names a cache entry: a file handle and an open mode
// (unix.O_RDONLY or unix.O_RDWR).
type openKey struct {
	fh    string
	flags int
}

// openFile is one cached descriptor. fd, dev and ino never change; the
// sync fields are filesync.go's; the others belong to the cache's lock.
type openFile struct {
	key      openKey
	fd       int
	dev, ino uint64

	syncMu   sync.RWMutex  // the sync gate (filesync.go)
	failures atomic.Uint64 // syncs of fd that failed
	unsynced atomic.Bool   // written (UNSTABLE) since its last sync began

	refs    int
	lastUse time.Time
	elem    *list.Element // nil once out of the cache
}

// newOpenFiles returns a cache of fs's files; syncFailed hears of every
// failed sync of a cached descriptor.
func newOpenFiles(fs *FS, syncFailed func(error)) *openFiles {
	return &openFiles{
		open:       fs.openRegular,
		now:        time.Now,
		max:        maxOpenFiles,
		idle:       openFileIdle,
		fsync:      syncFD,
		syncFailed: syncFailed,
		entries:    map[openKey]*openFile{},
	}
}

// acquire returns a descriptor of the file with handle fh opened with
// flags (unix.O_RDWR also serves readers), opening it on a miss. The
// caller must release it.
func (c *openFiles) acquire(fh []byte, flags int) (*openFile, error) {
	k := openKey{string(fh), flags}
	if f := c.lookup(k, flags == unix.O_RDONLY); f != nil {
		return f, nil
	}
	fd, st, err := c.open(fh, flags)
	if err != nil {
		return nil, err
	}
	f := &openFile{key: k, fd: fd, dev: st.Dev, ino: st.Ino, refs: 1}
	c.mu.Lock()
	if old := c.entries[k]; old != nil {
		// Opened concurrently: keep the cached one.
		old.refs++
		c.touchLocked(old)
		c.mu.Unlock()
		unix.Close(fd)
		return old, nil
	}
	if c.closed {
		c.mu.Unlock()
		return f, nil // not cached: closed by release
	}
	c.entries[k] = f
	f.elem = c.lru.PushFront(f)
	f.lastUse = c.now()
	var toClose []*openFile
	for c.lru.Len() > c.max {
		toClose = c.dropLocked(c.lru.Back().Value.(*openFile), toClose)
	}
	c.mu.Unlock()
	c.closeFiles(toClose)
	return f, nil
}

// lookup returns a cached entry for k, taking a reference; a reader also
// takes a read-write entry of the same file.
func (c *openFiles) lookup(k openKey, reader bool) *openFile {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.entries[k]
	if f == nil && reader {
		f = c.entries[openKey{k.fh, unix.O_RDWR}]
	}
	if f == nil {
		return nil
	}
	f.refs++
	c.touchLocked(f)
	return f
}

func (c *openFiles) touchLocked(f *openFile) {
	f.lastUse = c.now()
	if f.elem != nil {
		c.lru.MoveToFront(f.elem)
	}
}

// release gives back a reference taken by acquire.
func (c *openFiles) release(f *openFile) {
	c.mu.Lock()
	f.refs--
	last := f.refs == 0 && f.elem == nil
	if !last {
		c.touchLocked(f) // a long fsync is use, not idleness
	}
	c.mu.Unlock()
	if last {
		c.closeFile(f)
	}
}

// forget drops f from the cache (its file was found deleted); the
// descriptor is closed by the last release.
func (c *openFiles) forget(f *openFile) {
	c.mu.Lock()
	var toClose []*openFile
	if f.elem != nil {
		toClose = c.dropLocked(f, nil)
	}
	c.mu.Unlock()
	c.closeFiles(toClose)
}

// forgetInode drops every entry of the inode dev/ino (just removed or
// replaced through the gateway), so that no descriptor of ours keeps a
// deleted file's blocks allocated.
func (c *openFiles) forgetInode(dev, ino uint64) {
	c.mu.Lock()
	var toClose []*openFile
	for _, f := range c.entries {
		if f.dev == dev && f.ino == ino {
			toClose = c.dropLocked(f, toClose)
		}
	}
	c.mu.Unlock()
	c.closeFiles(toClose)
}

// dropLocked takes f out of the cache and appends it to toClose if nobody
// uses it (else the last release closes it).
func (c *openFiles) dropLocked(f *openFile, toClose []*openFile) []*openFile {
	delete(c.entries, f.key)
	c.lru.Remove(f.elem)
	f.elem = nil
	if f.refs == 0 {
		toClose = append(toClose, f)
	}
	return toClose
}

// closeIdle closes the descriptors unused for the idle time.
func (c *openFiles) closeIdle() {
	c.mu.Lock()
	now := c.now()
	var toClose []*openFile
	for e := c.lru.Back(); e != nil; {
		f := e.Value.(*openFile)
		prev := e.Prev()
		if now.Sub(f.lastUse) < c.idle {
			break // the rest were used more recently
		}
		if f.refs == 0 {
			toClose = c.dropLocked(f, toClose)
		}
		e = prev
	}
	c.mu.Unlock()
	c.closeFiles(toClose)
}

// closeAll closes every cached descriptor (those in use when their last
// user releases them) and stops caching.
func (c *openFiles) closeAll() {
	c.mu.Lock()
	c.closed = true
	var toClose []*openFile
	for _, f := range c.entries {
		toClose = c.dropLocked(f, toClose)
	}
	c.mu.Unlock()
	c.closeFiles(toClose)
}

// len returns the number of cached descriptors.
func (c *openFiles) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// run closes idle descriptors until ctx ends, then all of them.
func (c *openFiles) run(ctx context.Context) {
	t := time.NewTicker(c.idle / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			c.closeAll()
			return
		case <-t.C:
			c.closeIdle()
		}
	}
}

// closeFiles closes files dropped from the cache, outside its lock.
func (c *openFiles) closeFiles(files []*openFile) {
	for _, f := range files {
		c.closeFile(f)
	}
}

// stat returns f's attributes now; a file deleted since it was opened is
// dropped from the cache and answers ErrStale (its handle is stale).
func (c *openFiles) stat(f *openFile) (*statInfo, error) {
	fi, err := fstatInfo(f.fd)
	if err == nil && fi.st.Nlink == 0 {
		c.forget(f)
		return nil, fmt.Errorf("%w: deleted", ErrStale)
	}
	return fi, err
}
