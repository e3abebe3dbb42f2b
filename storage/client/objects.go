package client

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"go.uber.org/zap"

	"github.com/tsumiki-storage/tsumiki/storage/wire"
)

// MaxObjectSize is the largest object: offsets+lengths beyond it are refused.
const MaxObjectSize = 32 << 20

// ObjectInfo describes one object.
type ObjectInfo struct {
	Name    string
	Size    int64
	Version uint64 // raft index of the last change
}

func (c *Client) objectReq(ctx context.Context, pool, object string, op wire.Op) (wire.Request, error) {
	if object == "" {
		return wire.Request{}, fmt.Errorf("%w: empty object name", ErrInvalid)
	}
	p, err := c.pool(ctx, pool)
	if err != nil {
		return wire.Request{}, err
	}
	return wire.Request{Op: op, Pool: p.ID, PG: c.Map().PGOf(p, object), Object: object}, nil
}

func checkRange(off, length int64) error {
	if off < 0 || length < 0 {
		return fmt.Errorf("%w: negative offset or length", ErrInvalid)
	}
	if off+length > MaxObjectSize {
		return fmt.Errorf("%w: offset %d + length %d", ErrTooLarge, off, length)
	}
	return nil
}

// Write stores p at offset off of the object, creating it if needed. It
// returns once a majority of the PG's replicas have it on disk.
func (c *Client) Write(ctx context.Context, pool, object string, off int64, p []byte) error {
	if err := checkRange(off, int64(len(p))); err != nil {
		return err
	}
	req, err := c.objectReq(ctx, pool, object, wire.OpWrite)
	if err != nil {
		return err
	}
	req.Offset, req.Data = off, p
	_, err = c.toLeader(ctx, req, nil)
	return wrapOp(err, "write", pool, object)
}

// Truncate sets the object's size, creating it if needed.
func (c *Client) Truncate(ctx context.Context, pool, object string, size int64) error {
	if err := checkRange(size, 0); err != nil {
		return err
	}
	req, err := c.objectReq(ctx, pool, object, wire.OpTruncate)
	if err != nil {
		return err
	}
	req.Offset = size
	_, err = c.toLeader(ctx, req, nil)
	return wrapOp(err, "truncate", pool, object)
}

// Zero makes [off, off+length) read as zeros and frees whole blocks in it.
func (c *Client) Zero(ctx context.Context, pool, object string, off, length int64) error {
	if err := checkRange(off, length); err != nil {
		return err
	}
	req, err := c.objectReq(ctx, pool, object, wire.OpZero)
	if err != nil {
		return err
	}
	req.Offset, req.Length = off, length
	_, err = c.toLeader(ctx, req, nil)
	return wrapOp(err, "zero", pool, object)
}

// Delete removes the object; deleting a missing object is not an error.
func (c *Client) Delete(ctx context.Context, pool, object string) error {
	req, err := c.objectReq(ctx, pool, object, wire.OpDelete)
	if err != nil {
		return err
	}
	_, err = c.toLeader(ctx, req, nil)
	return wrapOp(err, "delete", pool, object)
}

// Stat returns the object's size and version, or ErrNotFound.
func (c *Client) Stat(ctx context.Context, pool, object string) (ObjectInfo, error) {
	req, err := c.objectReq(ctx, pool, object, wire.OpStat)
	if err != nil {
		return ObjectInfo{}, err
	}
	resp, err := c.toLeader(ctx, req, nil)
	if err != nil {
		return ObjectInfo{}, wrapOp(err, "stat", pool, object)
	}
	return ObjectInfo{Name: object, Size: int64(resp.A), Version: resp.B}, nil
}

// Read fills p from offset off (holes and bytes past the end read as
// zeros), or returns ErrNotFound. If the leader's copy is corrupt, the read
// is served by another replica once it has applied the same index.
func (c *Client) Read(ctx context.Context, pool, object string, off int64, p []byte) error {
	if err := checkRange(off, int64(len(p))); err != nil {
		return err
	}
	req, err := c.objectReq(ctx, pool, object, wire.OpRead)
	if err != nil {
		return err
	}
	req.Offset, req.Length = off, int64(len(p))
	resp, err := c.toLeader(ctx, req, p)
	var se *statusError
	if errors.As(err, &se) && se.status == wire.StatusCorrupt {
		c.log.Warn("corrupt copy on the pg leader; reading from another replica",
			zap.String("pool", pool), zap.String("object", object), zap.String("detail", se.msg))
		resp, err = c.readReplica(ctx, req, resp.A, p)
	}
	if err != nil {
		return wrapOp(err, "read", pool, object)
	}
	if len(resp.Data) != len(p) {
		return fmt.Errorf("client: read %s/%s: osd returned %d bytes, want %d", pool, object, len(resp.Data), len(p))
	}
	if len(p) > 0 && &resp.Data[0] != &p[0] {
		copy(p, resp.Data)
	}
	return nil
}

// readReplica reads from any replica that has applied minIndex and holds a
// good copy.
func (c *Client) readReplica(ctx context.Context, req wire.Request, minIndex uint64, into []byte) (wire.Response, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	m := c.Map()
	p, _ := m.PoolByID(req.Pool)
	var last error = ErrCorrupt
	for _, id := range upFirst(m, m.Replicas(p, req.PG)) {
		r := req
		r.Op, r.Epoch, r.MinIndex = wire.OpReplicaRead, m.Epoch, minIndex
		resp, err := c.call(ctx, id, &r, into)
		if err != nil {
			last = err
			continue
		}
		if resp.Status == wire.StatusOK {
			return resp, nil
		}
		last = &statusError{resp.Status, resp.Msg}
	}
	return wire.Response{}, fmt.Errorf("%w (last: %v)", ErrCorrupt, last)
}

// List returns the pool's objects whose names start with prefix, sorted.
func (c *Client) List(ctx context.Context, pool, prefix string) ([]ObjectInfo, error) {
	p, err := c.pool(ctx, pool)
	if err != nil {
		return nil, err
	}
	var out []ObjectInfo
	for pg := uint32(0); pg < p.PGNum; pg++ {
		after := ""
		for {
			resp, err := c.toLeader(ctx, wire.Request{Op: wire.OpList, Pool: p.ID, PG: pg, Object: prefix, Length: 1000, Data: []byte(after)}, nil)
			if err != nil {
				return nil, fmt.Errorf("client: list pool %s pg %d: %w", pool, pg, err)
			}
			ents, err := wire.DecodeList(resp.Data)
			if err != nil {
				return nil, err
			}
			for _, e := range ents {
				out = append(out, ObjectInfo{Name: e.Name, Size: e.Size, Version: e.Version})
			}
			if len(ents) < 1000 {
				break
			}
			after = ents[len(ents)-1].Name
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func wrapOp(err error, op, pool, object string) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s %s/%s: %w", op, pool, object, err)
}
