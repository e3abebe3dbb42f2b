// Package imagetest provides an in-memory object store with the semantics
// of *client.Client for everything blockdev/image uses, with fault
// injectors, so that image tests (and tests of the gateways built on
// images) run without OSDs.
//
// Who may import it: tests only (_test.go files of any package).
package imagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tsumiki-storage/tsumiki/storage/client"
)

// Op names an object operation, for fault injection and counting.
type Op string

// The operations of client.Client that MemObjects implements.
const (
	OpRead     Op = "read"
	OpWrite    Op = "write"
	OpZero     Op = "zero"
	OpTruncate Op = "truncate"
	OpDelete   Op = "delete"
	OpStat     Op = "stat"
	OpList     Op = "list"
)

// ErrInjected is the error the ready-made injectors return.
var ErrInjected = errors.New("imagetest: injected fault")

// Fault is what an injector decides for one operation.
type Fault struct {
	// Delay holds the operation this long before it runs (or until its
	// context ends, which fails it with the context's error).
	Delay time.Duration
	// Err fails the operation. Unless AfterApply, nothing is changed.
	Err error
	// AfterApply applies the change and then returns Err: an
	// acknowledgement lost on the way back.
	AfterApply bool
}

// Injector is asked about every operation (object is the prefix for
// OpList); it returns nil to let the operation through. Injectors compose:
// the delays of all of them add up, and the first error wins.
type Injector func(op Op, pool, object string) *Fault

// MemObjects is an in-memory object store. Like the real cluster: objects
// are created by write, zero and truncate; reads of holes and past the end
// return zeros; reading or stating a missing object is client.ErrNotFound;
// deleting one is not an error; unknown pools are client.ErrNoPool; ranges
// past client.MaxObjectSize are client.ErrTooLarge.
//
// Its methods are safe for concurrent use.
type MemObjects struct {
	mu        sync.Mutex // guards the following
	pools     map[string]map[string][]byte
	injectors []Injector
	counts    map[Op]int
	inflight  int
	peak      int
}

// NewMemObjects returns a store with the given (empty) pools.
func NewMemObjects(pools ...string) *MemObjects {
	m := &MemObjects{pools: map[string]map[string][]byte{}, counts: map[Op]int{}}
	for _, p := range pools {
		m.pools[p] = map[string][]byte{}
	}
	return m
}

// Inject adds an injector; it applies to every later operation.
func (m *MemObjects) Inject(f Injector) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.injectors = append(m.injectors, f)
}

// ClearFaults removes every injector.
func (m *MemObjects) ClearFaults() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.injectors = nil
}

// Count returns how many operations of kind op have started.
func (m *MemObjects) Count(op Op) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.counts[op]
}

// PeakInFlight returns the most operations that were ever running at once.
func (m *MemObjects) PeakInFlight() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.peak
}

// Objects returns a copy of the objects of pool whose names start with
// prefix.
func (m *MemObjects) Objects(pool, prefix string) map[string][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string][]byte{}
	for name, data := range m.pools[pool] {
		if strings.HasPrefix(name, prefix) {
			out[name] = bytes.Clone(data)
		}
	}
	return out
}

// FailOp fails every operation of kind op with ErrInjected.
func FailOp(op Op) Injector {
	return func(o Op, _, _ string) *Fault {
		if o == op {
			return &Fault{Err: fmt.Errorf("%w: %s", ErrInjected, op)}
		}
		return nil
	}
}

// FailNext fails the next n operations of kind op with ErrInjected;
// afterApply makes them lost acknowledgements instead.
func FailNext(op Op, n int, afterApply bool) Injector {
	var mu sync.Mutex
	return func(o Op, _, object string) *Fault {
		mu.Lock()
		defer mu.Unlock()
		if o != op || n == 0 {
			return nil
		}
		n--
		return &Fault{Err: fmt.Errorf("%w: %s %s", ErrInjected, op, object), AfterApply: afterApply}
	}
}

// DelayOp holds every operation of kind op for d.
func DelayOp(op Op, d time.Duration) Injector {
	return func(o Op, _, _ string) *Fault {
		if o == op {
			return &Fault{Delay: d}
		}
		return nil
	}
}

// begin counts op, runs the injectors and the delay, and returns whether
// to apply the change and the injected error (if any).
func (m *MemObjects) begin(ctx context.Context, op Op, pool, object string) (bool, error) {
	m.mu.Lock()
	m.counts[op]++
	m.inflight++
	m.peak = max(m.peak, m.inflight)
	injectors := slices.Clone(m.injectors)
	m.mu.Unlock()
	var delay time.Duration
	var fault *Fault
	for _, f := range injectors {
		if ft := f(op, pool, object); ft != nil {
			delay += ft.Delay
			if fault == nil && ft.Err != nil {
				fault = ft
			}
		}
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	if fault != nil {
		return fault.AfterApply, fault.Err
	}
	return true, nil
}

func (m *MemObjects) end() {
	m.mu.Lock()
	m.inflight--
	m.mu.Unlock()
}

// do runs one operation: f is called under the lock with the pool's
// objects, unless a fault stops it.
func (m *MemObjects) do(ctx context.Context, op Op, pool, object string, f func(objs map[string][]byte) error) error {
	defer m.end()
	apply, injected := m.begin(ctx, op, pool, object)
	if apply {
		m.mu.Lock()
		objs, ok := m.pools[pool]
		var err error
		if !ok {
			err = fmt.Errorf("%w: %q", client.ErrNoPool, pool)
		} else if op != OpList && object == "" {
			err = fmt.Errorf("%w: empty object name", client.ErrInvalid)
		} else {
			err = f(objs)
		}
		m.mu.Unlock()
		if err != nil {
			return fmt.Errorf("%s %s/%s: %w", op, pool, object, err)
		}
	}
	if injected != nil {
		return fmt.Errorf("%s %s/%s: %w", op, pool, object, injected)
	}
	return nil
}

func checkRange(off, length int64) error {
	if off < 0 || length < 0 {
		return fmt.Errorf("%w: negative offset or length", client.ErrInvalid)
	}
	if off+length > client.MaxObjectSize {
		return fmt.Errorf("%w: offset %d + length %d", client.ErrTooLarge, off, length)
	}
	return nil
}

// grow extends data with zeros to n bytes.
func grow(data []byte, n int64) []byte {
	if n > int64(len(data)) {
		data = append(data, make([]byte, n-int64(len(data)))...)
	}
	return data
}

// Read fills p from off; see MemObjects.
func (m *MemObjects) Read(ctx context.Context, pool, object string, off int64, p []byte) error {
	if err := checkRange(off, int64(len(p))); err != nil {
		return err
	}
	return m.do(ctx, OpRead, pool, object, func(objs map[string][]byte) error {
		data, ok := objs[object]
		if !ok {
			return client.ErrNotFound
		}
		clear(p)
		if off < int64(len(data)) {
			copy(p, data[off:])
		}
		return nil
	})
}

// Write stores p at off, creating the object.
func (m *MemObjects) Write(ctx context.Context, pool, object string, off int64, p []byte) error {
	if err := checkRange(off, int64(len(p))); err != nil {
		return err
	}
	return m.do(ctx, OpWrite, pool, object, func(objs map[string][]byte) error {
		data := grow(objs[object], off+int64(len(p)))
		copy(data[off:], p)
		objs[object] = data
		return nil
	})
}

// Zero zeroes [off, off+length), growing and creating the object as the
// real store does.
func (m *MemObjects) Zero(ctx context.Context, pool, object string, off, length int64) error {
	if err := checkRange(off, length); err != nil {
		return err
	}
	return m.do(ctx, OpZero, pool, object, func(objs map[string][]byte) error {
		data := grow(objs[object], off+length)
		clear(data[off : off+length])
		objs[object] = data
		return nil
	})
}

// Truncate sets the object's size, creating it.
func (m *MemObjects) Truncate(ctx context.Context, pool, object string, size int64) error {
	if err := checkRange(size, 0); err != nil {
		return err
	}
	return m.do(ctx, OpTruncate, pool, object, func(objs map[string][]byte) error {
		data := objs[object]
		if size < int64(len(data)) {
			data = data[:size:size]
		}
		objs[object] = grow(data, size)
		return nil
	})
}

// Delete removes the object; a missing object is not an error.
func (m *MemObjects) Delete(ctx context.Context, pool, object string) error {
	return m.do(ctx, OpDelete, pool, object, func(objs map[string][]byte) error {
		delete(objs, object)
		return nil
	})
}

// Stat returns the object's size, or client.ErrNotFound.
func (m *MemObjects) Stat(ctx context.Context, pool, object string) (client.ObjectInfo, error) {
	var info client.ObjectInfo
	err := m.do(ctx, OpStat, pool, object, func(objs map[string][]byte) error {
		data, ok := objs[object]
		if !ok {
			return client.ErrNotFound
		}
		info = client.ObjectInfo{Name: object, Size: int64(len(data))}
		return nil
	})
	return info, err
}

// List returns the objects whose names start with prefix, sorted by name.
func (m *MemObjects) List(ctx context.Context, pool, prefix string) ([]client.ObjectInfo, error) {
	var out []client.ObjectInfo
	err := m.do(ctx, OpList, pool, prefix, func(objs map[string][]byte) error {
		for _, name := range slices.Sorted(maps.Keys(objs)) {
			if strings.HasPrefix(name, prefix) {
				out = append(out, client.ObjectInfo{Name: name, Size: int64(len(objs[name]))})
			}
		}
		return nil
	})
	return out, err
}
