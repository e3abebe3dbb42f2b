package chunkstore

import (
	"bytes"
	"container/list"
	"sync"
)

// metaCache keeps recently used object metas (and "no such object") in
// memory, so that the write path and reads do not look each one up in
// badger. It is filled by readers and by Commit, always under the object's
// stripe lock, so a cached value is never older than badger's. It holds
// copies: callers may change what they get.
type metaCache struct {
	max int

	mu    sync.Mutex // guards the following
	items map[metaKeyT]*list.Element
	lru   *list.List // of *metaItem, most recent at the front
}

type metaKeyT struct {
	pg   PG
	name string
}

type metaItem struct {
	key   metaKeyT
	m     objMeta
	found bool
}

// defaultMetaCacheEntries bounds the cache: a few MiB for 4 MiB objects.
const defaultMetaCacheEntries = 16384

func newMetaCache(max int) *metaCache {
	return &metaCache{max: max, items: map[metaKeyT]*list.Element{}, lru: list.New()}
}

func (m objMeta) clone() objMeta {
	m.bits = bytes.Clone(m.bits)
	m.alt = bytes.Clone(m.alt)
	m.bad = bytes.Clone(m.bad)
	return m
}

// get returns a copy of the cached meta of (pg, name), and whether it was cached.
func (c *metaCache) get(pg PG, name string) (m objMeta, found, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.items[metaKeyT{pg, name}]
	if e == nil {
		return objMeta{}, false, false
	}
	c.lru.MoveToFront(e)
	it := e.Value.(*metaItem)
	return it.m.clone(), it.found, true
}

// put caches a copy of m (found=false: the object does not exist).
func (c *metaCache) put(pg PG, name string, m objMeta, found bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := metaKeyT{pg, name}
	it := &metaItem{key: k, m: m.clone(), found: found}
	if e := c.items[k]; e != nil {
		e.Value = it
		c.lru.MoveToFront(e)
		return
	}
	c.items[k] = c.lru.PushFront(it)
	for c.lru.Len() > c.max {
		old := c.lru.Remove(c.lru.Back()).(*metaItem)
		delete(c.items, old.key)
	}
}

// dropPG forgets every object of pg.
func (c *metaCache) dropPG(pg PG) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.items {
		if k.pg == pg {
			c.lru.Remove(e)
			delete(c.items, k)
		}
	}
}

// drop forgets (pg, name).
func (c *metaCache) drop(pg PG, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := metaKeyT{pg, name}
	if e := c.items[k]; e != nil {
		c.lru.Remove(e)
		delete(c.items, k)
	}
}
