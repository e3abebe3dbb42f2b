package nbd

import (
	"math/bits"
	"sync"
)

// bufPool recycles payload buffers by power-of-two size class, from 4 KiB
// to 32 MiB; other sizes are allocated and left to the GC. Safe for
// concurrent use.
type bufPool struct {
	classes [bufClasses]sync.Pool // of *[]byte with cap 1<<(minBufShift+i)
}

const (
	minBufShift = 12 // 4 KiB
	bufClasses  = 14 // up to 32 MiB
)

// class returns the size class holding n bytes, or -1.
func bufClass(n int) int {
	if n <= 0 {
		return -1
	}
	c := max(bits.Len(uint(n-1))-minBufShift, 0)
	if c >= bufClasses {
		return -1
	}
	return c
}

// get returns a buffer of length n with unspecified contents.
func (p *bufPool) get(n int) []byte {
	c := bufClass(n)
	if c < 0 {
		return make([]byte, n)
	}
	if b, ok := p.classes[c].Get().(*[]byte); ok {
		return (*b)[:n]
	}
	return make([]byte, n, 1<<(minBufShift+c))
}

// put returns a buffer from get; the caller must not use it afterwards.
func (p *bufPool) put(b []byte) {
	c := bufClass(cap(b))
	if c < 0 || cap(b) != 1<<(minBufShift+c) {
		return
	}
	b = b[:cap(b)]
	p.classes[c].Put(&b)
}
