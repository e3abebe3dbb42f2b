package chunkstore

import (
	"bytes"
	"testing"
)

// TestMetaCodec: a meta encodes as it always has while every block is in
// slot 0 and none is damaged, grows a slot bitmap and then a damage bitmap
// only when needed, and decodes back to the same blocks, slots and marks.
func TestMetaCodec(t *testing.T) {
	const bs = 4096
	mk := func(alt, bad []int64) objMeta {
		var m objMeta
		m.resize(20*bs, bs)
		m.version = 7
		for i := int64(0); i < 20; i += 2 {
			m.set(i)
		}
		for _, i := range alt {
			m.setSlot(i, 1)
		}
		for _, i := range bad {
			m.setBad(i, true)
		}
		return m
	}
	for _, c := range []struct {
		name     string
		m        objMeta
		wantSize int
	}{
		{"plain", mk(nil, nil), metaHeaderLen + 3},
		{"alt", mk([]int64{4}, nil), metaHeaderLen + 6},
		{"bad", mk(nil, []int64{6}), metaHeaderLen + 9},
		{"alt and bad", mk([]int64{4}, []int64{4, 18}), metaHeaderLen + 9},
		{"bad cleared", func() objMeta { m := mk(nil, []int64{6}); m.setBad(6, false); return m }(), metaHeaderLen + 3},
		{"bad made a hole", func() objMeta { m := mk(nil, []int64{6}); m.clear(6); return m }(), metaHeaderLen + 3},
	} {
		p := c.m.encode()
		if len(p) != c.wantSize {
			t.Errorf("%s: encoded %d bytes, want %d", c.name, len(p), c.wantSize)
		}
		d, err := decodeMeta(p, bs)
		if err != nil {
			t.Fatalf("%s: decode: %v", c.name, err)
		}
		for i := int64(0); i < 20; i++ {
			if d.has(i) != c.m.has(i) || d.slot(i) != c.m.slot(i) || d.isBad(i) != c.m.isBad(i) {
				t.Fatalf("%s: block %d: has %v slot %d bad %v, want %v %d %v", c.name, i,
					d.has(i), d.slot(i), d.isBad(i), c.m.has(i), c.m.slot(i), c.m.isBad(i))
			}
		}
		if !bytes.Equal(d.encode(), p) {
			t.Errorf("%s: encode(decode(p)) differs", c.name)
		}
	}
	// A damaged hole is malformed.
	bad := mk(nil, []int64{6})
	p := bad.encode()
	p[len(p)-1] |= 0x02 // block 17: a hole
	if _, err := decodeMeta(p, bs); err == nil {
		t.Fatal("decoded a meta that marks a hole damaged")
	}
}

// FuzzDecodeMeta: whatever decodes encodes back to the same bytes (the
// codec is canonical), and never panics.
func FuzzDecodeMeta(f *testing.F) {
	var m objMeta
	m.resize(9*4096, 4096)
	m.set(1)
	m.set(3)
	m.setSlot(3, 1)
	m.setBad(1, true)
	f.Add(m.encode())
	f.Fuzz(func(t *testing.T, p []byte) {
		d, err := decodeMeta(p, 4096)
		if err != nil {
			return
		}
		if q := d.encode(); !bytes.Equal(q, p) {
			// Non-canonical forms (an all-zero slot or damage bitmap)
			// must at least decode to the same meta.
			e, err := decodeMeta(q, 4096)
			if err != nil || e.size != d.size || e.version != d.version {
				t.Fatalf("re-encoding changed the meta: %v", err)
			}
			for i := range int64(len(d.bits)) * 8 {
				if e.has(i) != d.has(i) || e.slot(i) != d.slot(i) || e.isBad(i) != d.isBad(i) {
					t.Fatalf("re-encoding changed block %d", i)
				}
			}
		}
	})
}
