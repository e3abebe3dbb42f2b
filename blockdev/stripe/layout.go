package stripe

import (
	"errors"
	"fmt"
)

// Limits of a layout.
const (
	// MinObjectSize and MaxObjectSize bound Layout.ObjectSize. The upper
	// bound is the storage layer's object size limit (client.MaxObjectSize).
	MinObjectSize = 4 << 10
	MaxObjectSize = 32 << 20
	// DefaultObjectSize is used when Layout.ObjectSize is 0.
	DefaultObjectSize = 4 << 20
	// MinStripeUnit bounds Layout.StripeUnit from below: smaller units
	// would turn one page-sized write into several object writes.
	MinStripeUnit = 4 << 10
	// MaxStripeCount bounds Layout.StripeCount: one object set is spread
	// over at most this many objects.
	MaxStripeCount = 1024
)

// Layout is how an image is striped over objects. It is a value; the zero
// value means the defaults (see WithDefaults).
type Layout struct {
	// ObjectSize is the size of each object: a power of two in
	// [MinObjectSize, MaxObjectSize]. 0 means DefaultObjectSize.
	ObjectSize int64
	// StripeUnit is how many consecutive image bytes go to one object
	// before the next object of the set: at least MinStripeUnit, and it
	// divides ObjectSize. 0 means ObjectSize (no striping).
	StripeUnit int64
	// StripeCount is the number of objects in an object set, 1..
	// MaxStripeCount. 0 means 1.
	StripeCount int64
}

// WithDefaults returns a copy of l with zero fields set to their defaults.
func (l Layout) WithDefaults() Layout {
	if l.ObjectSize == 0 {
		l.ObjectSize = DefaultObjectSize
	}
	if l.StripeUnit == 0 {
		l.StripeUnit = l.ObjectSize
	}
	if l.StripeCount == 0 {
		l.StripeCount = 1
	}
	return l
}

// Validate returns nil if l (defaults not applied) is usable, or one error
// per broken rule, joined (errors.Join); each wraps ErrInvalid.
func (l Layout) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...))
	}
	osOK := true
	if l.ObjectSize < MinObjectSize || l.ObjectSize > MaxObjectSize {
		bad("object size %d is outside %d (4 KiB) .. %d (32 MiB)", l.ObjectSize, MinObjectSize, MaxObjectSize)
		osOK = false
	} else if l.ObjectSize&(l.ObjectSize-1) != 0 {
		bad("object size %d is not a power of two (e.g. 4 MiB = 4194304)", l.ObjectSize)
		osOK = false
	}
	if l.StripeUnit < MinStripeUnit {
		bad("stripe unit %d is below %d (4 KiB)", l.StripeUnit, MinStripeUnit)
	} else if osOK && l.ObjectSize%l.StripeUnit != 0 {
		bad("stripe unit %d does not divide the object size %d", l.StripeUnit, l.ObjectSize)
	}
	if l.StripeCount < 1 || l.StripeCount > MaxStripeCount {
		bad("stripe count %d is outside 1 .. %d", l.StripeCount, MaxStripeCount)
	}
	return errors.Join(errs...)
}

// SetSize is the number of image bytes one object set holds.
func (l Layout) SetSize() int64 { return l.ObjectSize * l.StripeCount }

// String describes l as "object size 4194304, stripe unit 4194304 x 1".
func (l Layout) String() string {
	return fmt.Sprintf("object size %d, stripe unit %d x %d", l.ObjectSize, l.StripeUnit, l.StripeCount)
}
