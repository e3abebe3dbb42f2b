package nbdtest

import (
	"context"
	"time"
)

// Op names an Export operation, for fault injection and call counts.
type Op uint8

// Operations.
const (
	OpRead Op = 1 << iota
	OpWrite
	OpFlush
	OpTrim
	OpZero
	OpExtents

	// OpAny matches every operation.
	OpAny = OpRead | OpWrite | OpFlush | OpTrim | OpZero | OpExtents
)

func (o Op) String() string {
	switch o {
	case OpRead:
		return "read"
	case OpWrite:
		return "write"
	case OpFlush:
		return "flush"
	case OpTrim:
		return "trim"
	case OpZero:
		return "zero"
	case OpExtents:
		return "extents"
	}
	return "ops"
}

// Fault makes matching operations fail, wait or return corrupt data.
// Faults compose: every matching fault's Delay is added up, the first
// matching fault with an Err decides the error, and any matching Corrupt
// fault corrupts a read.
type Fault struct {
	// Ops the fault applies to (a mask of Op values).
	Ops Op
	// Off and Len select the byte range; an operation matches when it
	// overlaps [Off, Off+Len). Len 0 matches every range (and Flush, which
	// has none).
	Off, Len int64
	// Err is returned (wrapped) by matching operations. Use nbd.ErrNoSpace
	// or syscall.ENOSPC for a full backend, anything else for EIO.
	Err error
	// Delay is waited (honouring ctx) before the operation runs.
	Delay time.Duration
	// Corrupt flips the first byte of the data a matching read returns
	// (reads only).
	Corrupt bool
	// Times is how many operations the fault hits before it goes away;
	// 0 means forever.
	Times int
}

type fault struct {
	Fault
	hits int
}

func (f *fault) matches(op Op, off, n int64) bool {
	if f.Ops&op == 0 {
		return false
	}
	if f.Len == 0 {
		return true
	}
	return off < f.Off+f.Len && f.Off < off+n
}

func (f *fault) spent() bool { return f.Times > 0 && f.hits >= f.Times }

// Inject adds a fault to every Export of the image.
func (im *Image) Inject(f Fault) {
	im.mu.Lock()
	defer im.mu.Unlock()
	im.faults = append(im.faults, &fault{Fault: f})
}

// ClearFaults removes every fault.
func (im *Image) ClearFaults() {
	im.mu.Lock()
	defer im.mu.Unlock()
	im.faults = nil
}

func (im *Image) dropSpentLocked() {
	kept := im.faults[:0]
	for _, f := range im.faults {
		if !f.spent() {
			kept = append(kept, f)
		}
	}
	clear(im.faults[len(kept):])
	im.faults = kept
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
