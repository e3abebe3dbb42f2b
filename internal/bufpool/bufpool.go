// Package bufpool recycles byte buffers by power-of-two size class, from
// 4 KiB to 32 MiB, so that the data path does not allocate (and zero) a
// fresh buffer per request. Any package may import it; it imports only the
// standard library.
package bufpool

import (
	"math/bits"
	"sync"
)

// Pool recycles buffers; the zero value is ready. Sizes outside the classes
// are allocated and left to the GC. Safe for concurrent use.
type Pool struct {
	classes [classes]sync.Pool // of *[]byte with cap 1<<(minShift+i)
}

const (
	minShift = 12 // 4 KiB
	classes  = 14 // up to 32 MiB
)

// Class returns the size class holding n bytes, or -1.
func Class(n int) int {
	if n <= 0 {
		return -1
	}
	c := max(bits.Len(uint(n-1))-minShift, 0)
	if c >= classes {
		return -1
	}
	return c
}

// ClassSize returns the capacity of class c's buffers.
func ClassSize(c int) int { return 1 << (minShift + c) }

// Get returns a buffer of length n with unspecified contents.
func (p *Pool) Get(n int) []byte {
	c := Class(n)
	if c < 0 {
		return make([]byte, n)
	}
	if b, ok := p.classes[c].Get().(*[]byte); ok {
		return (*b)[:n]
	}
	return make([]byte, n, ClassSize(c))
}

// Put recycles b, which nobody may use afterwards. Buffers whose capacity is
// not exactly a class size are left to the GC, so any buffer may be put.
func (p *Pool) Put(b []byte) {
	c := Class(cap(b))
	if c < 0 || cap(b) != ClassSize(c) {
		return
	}
	b = b[:cap(b)]
	p.classes[c].Put(&b)
}
