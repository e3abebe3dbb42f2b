package image

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/tsumiki-storage/tsumiki/storage/client"
)

// ObjectIO is the object store an image lives in (STYLE.md habit 2: the
// consumer declares what it needs). *client.Client implements it; so does
// imagetest.MemObjects.
//
// Semantics the image relies on: Write, Zero and Truncate create a missing
// object (Zero also grows it to off+length); Read fills p with zeros where
// the object has no data, including past its end, and returns an error
// wrapping client.ErrNotFound for a missing object, as Stat does; Delete of
// a missing object succeeds; List returns every object whose name starts
// with prefix. All are safe for concurrent use and durable when they
// return nil.
type ObjectIO interface {
	Read(ctx context.Context, pool, object string, off int64, p []byte) error
	Write(ctx context.Context, pool, object string, off int64, p []byte) error
	Zero(ctx context.Context, pool, object string, off, length int64) error
	Truncate(ctx context.Context, pool, object string, size int64) error
	Delete(ctx context.Context, pool, object string) error
	Stat(ctx context.Context, pool, object string) (client.ObjectInfo, error)
	List(ctx context.Context, pool, prefix string) ([]client.ObjectInfo, error)
}

var _ ObjectIO = (*client.Client)(nil)

// ObjectName is the name of data object obj of the image with id.
func ObjectName(id string, obj uint64) string { return fmt.Sprintf("%s.%016x", id, obj) }

// objectPrefix is what every data object name of the image starts with.
func objectPrefix(id string) string { return id + "." }

// parseObjectName returns the object number of a data object of image id.
func parseObjectName(id, name string) (uint64, bool) {
	rest, ok := strings.CutPrefix(name, objectPrefix(id))
	if !ok || len(rest) != 16 {
		return 0, false
	}
	n, err := strconv.ParseUint(rest, 16, 64)
	return n, err == nil
}
