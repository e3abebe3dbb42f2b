package chunkstore

import (
	"runtime"
	"testing"
	"unsafe"
)

// TestDirectBufs: buffers are aligned and whole, given back ones are
// reused (up to directBufsKept), and a collection does not empty the keep.
func TestDirectBufs(t *testing.T) {
	d := newDirectBufs()
	var got [][]byte
	for range directBufsKept + 2 {
		b := d.get()
		if len(b) != directChunk || uintptr(unsafe.Pointer(&b[0]))%directAlign != 0 {
			t.Fatalf("buffer of %d bytes at %p: want %d, %d-aligned", len(b), &b[0], directChunk, directAlign)
		}
		got = append(got, b)
	}
	for _, b := range got {
		d.put(b) // the last two do not fit and are dropped
	}
	runtime.GC() // a sync.Pool would be empty after two
	runtime.GC()
	seen := map[*byte]bool{}
	for _, b := range got[:directBufsKept] {
		seen[&b[0]] = true
	}
	for range directBufsKept {
		if b := d.get(); !seen[&b[0]] {
			t.Fatal("a kept buffer was not reused")
		}
	}
}
