package chunkstore

import (
	"container/list"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// Object files. Each object of a PG is one file
//
//	objects/<pool>.<pg hex>/<hex of the first 16 bytes of SHA-256(name)>
//
// laid out as two slots, each a checksum table followed by the blocks at
// fixed offsets (T = tableSize(bs), M = MaxObjectSize):
//
//	[0, T)                   slot 0: CRC-32C of block i at 4*i (big-endian)
//	[T+i*bs, T+(i+1)*bs)     slot 0: block i
//	[T+M, 2T+M)              slot 1: CRC-32C of block i at T+M+4*i
//	[2T+M+i*bs, ...)         slot 1: block i
//
// Files are sparse; slot 1 takes no space until a block is written there,
// and a file without slot 1 is what stores before slots looked like. The
// object's meta (badger) holds a bitmap of stored blocks and is the
// authority: a block whose bit is clear is a hole, reads as zeros and is
// never read from the file; a second bitmap names the slot of each stored
// block (meta.go; docs/design-big-writes.md for why there are two). A block's checksum covers the name hash, the
// block index and the bytes, so a block read from the wrong place fails.
// Files are written with pwrite and read with pread: their pages live in the
// kernel's page cache, not in the OSD's memory, and a checkpoint makes them
// durable (checkpoint.go).

// objID names one object and its file.
type objID struct {
	pg   PG
	name string
	hash [16]byte
}

func newObjID(pg PG, name string) objID {
	sum := sha256.Sum256([]byte(name))
	id := objID{pg: pg, name: name}
	copy(id.hash[:], sum[:16])
	return id
}

func pgDirName(pg PG) string { return fmt.Sprintf("%d.%x", pg.Pool, pg.Seq) }

func (o objID) rel() string { return filepath.Join(pgDirName(o.pg), hex.EncodeToString(o.hash[:])) }

// stripe picks the object's lock.
func (o objID) stripe() int { return int(o.hash[0]) }

// blockSum is the checksum stored for block i holding data.
func (o objID) blockSum(i int64, data []byte) uint32 {
	var hdr [24]byte
	copy(hdr[:16], o.hash[:])
	binary.BigEndian.PutUint64(hdr[16:], uint64(i))
	return crc32.Update(crc32.Update(0, castagnoli, hdr[:]), castagnoli, data)
}

// tableSize is the size of the checksum table for block size bs, rounded up
// to a whole number of 4 KiB pages so the blocks stay aligned.
func tableSize(bs int64) int64 {
	n := MaxObjectSize / bs * 4
	return (n + 4095) &^ 4095
}

// fileCache keeps object files open, at most max that nobody uses.
type fileCache struct {
	root string // <Dir>/objects
	max  int

	mu    sync.Mutex // guards the following
	open  map[string]*objFile
	idle  *list.List          // of *objFile with refs == 0, most recently used at the front
	dirty map[string]struct{} // files written since the last checkpoint (relative paths)
	dirs  map[string]struct{} // directories whose entries changed since the last checkpoint
	// Directories in which a file (or, for ".", a directory) was created
	// and that no placement has synced since (placement.go, syncPlaced),
	// with the generation of their last change; and those a placement
	// synced at least once since open (before that, an entry may still be
	// only in memory from a process that was killed).
	unsynced   map[string]uint64
	syncedOnce map[string]bool
	gen        uint64
}

type objFile struct {
	rel    string
	f      *os.File
	direct *os.File // O_DIRECT descriptor for placed writes, opened on first use (directOf)
	refs   int
	elem   *list.Element // in idle when refs == 0
}

// close closes the descriptors.
func (of *objFile) close() {
	_ = of.f.Close()
	if of.direct != nil {
		_ = of.direct.Close()
	}
}

// directOf returns of's O_DIRECT descriptor, opening it on first use;
// the file system's refusal (no O_DIRECT) is returned.
func (c *fileCache) directOf(of *objFile) (*os.File, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.open[of.rel] != of {
		return nil, os.ErrClosed // removed since: the path may name a new file
	}
	if of.direct == nil {
		f, err := openDirect(filepath.Join(c.root, of.rel))
		if err != nil {
			return nil, err
		}
		of.direct = f
	}
	return of.direct, nil
}

func newFileCache(root string, max int) *fileCache {
	return &fileCache{root: root, max: max, open: map[string]*objFile{}, idle: list.New(),
		dirty: map[string]struct{}{}, dirs: map[string]struct{}{},
		unsynced: map[string]uint64{}, syncedOnce: map[string]bool{}}
}

// get returns the open file of rel. With create, a missing file (and its
// directory) is created; truncate empties it. Without create a missing file
// is os.ErrNotExist. Release the file with put.
func (c *fileCache) get(rel string, create, truncate bool) (*objFile, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	of := c.open[rel]
	if of == nil {
		f, err := c.openLocked(rel, create)
		if err != nil {
			return nil, err
		}
		of = &objFile{rel: rel, f: f}
		c.open[rel] = of
	} else if of.elem != nil {
		c.idle.Remove(of.elem)
		of.elem = nil
	}
	of.refs++
	if truncate {
		if err := of.f.Truncate(0); err != nil {
			c.putLocked(of)
			return nil, err
		}
	}
	c.evictLocked()
	return of, nil
}

func (c *fileCache) openLocked(rel string, create bool) (*os.File, error) {
	path := filepath.Join(c.root, rel)
	if !create {
		return os.OpenFile(path, os.O_RDWR, 0)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return f, err
	}
	dir := filepath.Dir(rel)
	if _, err := os.Stat(filepath.Join(c.root, dir)); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Join(c.root, dir), 0o750); err != nil {
			return nil, err
		}
		c.dirs["."] = struct{}{}
		c.createdInLocked(".")
	}
	f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, err
	}
	c.dirs[dir] = struct{}{}
	c.createdInLocked(dir)
	return f, nil
}

// createdInLocked records that an entry was created in dir.
func (c *fileCache) createdInLocked(dir string) {
	c.gen++
	c.unsynced[dir] = c.gen
}

// unsyncedDirs returns which of dirs may hold entries not yet durable (see
// unsynced), with their generations for dirsSynced.
func (c *fileCache) unsyncedDirs(dirs []string) map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]uint64{}
	for _, d := range dirs {
		if g, ok := c.unsynced[d]; ok || !c.syncedOnce[d] {
			out[d] = g
		}
	}
	return out
}

// dirsSynced forgets the directories that were synced, unless an entry
// was created in one since unsyncedDirs returned it.
func (c *fileCache) dirsSynced(synced map[string]uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for d, g := range synced {
		c.syncedOnce[d] = true
		if g2, ok := c.unsynced[d]; ok && g2 == g {
			delete(c.unsynced, d)
		}
	}
}

// put releases a file from get.
func (c *fileCache) put(of *objFile) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(of)
}

func (c *fileCache) putLocked(of *objFile) {
	of.refs--
	if c.open[of.rel] != of {
		return // removed (and closed) while held: not the cache's any more
	}
	if of.refs == 0 {
		of.elem = c.idle.PushFront(of)
		c.evictLocked()
	}
}

func (c *fileCache) evictLocked() {
	for c.idle.Len() > 0 && len(c.open) > c.max {
		of := c.idle.Remove(c.idle.Back()).(*objFile)
		of.elem = nil
		delete(c.open, of.rel)
		of.close() // checkpoints fsync by path
	}
}

// markDirty records that rel was written.
func (c *fileCache) markDirty(rel string) {
	c.mu.Lock()
	c.dirty[rel] = struct{}{}
	c.mu.Unlock()
}

// remove deletes rel's file. The caller holds the object's stripe lock, so
// nobody else uses it.
func (c *fileCache) remove(rel string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if of := c.open[rel]; of != nil {
		if of.elem != nil {
			c.idle.Remove(of.elem)
		}
		delete(c.open, rel)
		of.close()
	}
	delete(c.dirty, rel)
	err := os.Remove(filepath.Join(c.root, rel))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err == nil {
		c.dirs[filepath.Dir(rel)] = struct{}{}
	}
	return err
}

// takeDirty returns and resets the files and directories changed since the
// last call.
func (c *fileCache) takeDirty() (files, dirs []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for f := range c.dirty {
		files = append(files, f)
	}
	for d := range c.dirs {
		dirs = append(dirs, d)
	}
	c.dirty, c.dirs = map[string]struct{}{}, map[string]struct{}{}
	return files, dirs
}

// giveBack re-marks files and directories after a failed checkpoint.
func (c *fileCache) giveBack(files, dirs []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range files {
		c.dirty[f] = struct{}{}
	}
	for _, d := range dirs {
		c.dirs[d] = struct{}{}
	}
}

// syncPaths fsyncs each relative path under root; a file deleted since it
// was written is skipped (its directory's sync records the deletion).
func syncPaths(root string, rels []string) error {
	for _, rel := range rels {
		f, err := os.Open(filepath.Join(root, rel))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		err = f.Sync()
		cerr := f.Close()
		if err != nil {
			return fmt.Errorf("fsync %s: %w", rel, err)
		}
		if cerr != nil {
			return cerr
		}
	}
	return nil
}

// closeAll closes every cached file.
func (c *fileCache) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for rel, of := range c.open {
		of.close()
		delete(c.open, rel)
	}
	c.idle.Init()
}

// preadFull reads len(p) bytes at off; bytes past the end of the file read
// as zeros (a sparse tail).
func preadFull(f *os.File, p []byte, off int64) error {
	n, err := f.ReadAt(p, off)
	if err == io.EOF {
		clear(p[n:])
		return nil
	}
	return err
}
