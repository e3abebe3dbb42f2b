package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// acquire takes pool/name's lock for this Store's holder, atomically with
// checking that the image exists. It returns the lock, the header and the
// header's revision. Errors wrap ErrNotFound, are a *LockedError, or are
// the control plane's.
func (s *Store) acquire(ctx context.Context, pool, name string) (*leaseLock, Header, int64, error) {
	hk, lk := s.headerKey(pool, name), s.lockKey(pool, name)
	start := s.cfg.Now()
	grant, err := s.cli.Grant(ctx, ttlSeconds(s.cfg.LockTTL))
	if err != nil {
		return nil, Header{}, 0, fmt.Errorf("image: lock %s/%s: grant lease: %w", pool, name, err)
	}
	holder := s.cfg.Holder
	holder.Since = start.UTC().Truncate(time.Second)
	value, err := json.Marshal(holder)
	if err != nil {
		return nil, Header{}, 0, err
	}
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(lk), "=", 0), clientv3.Compare(clientv3.CreateRevision(hk), ">", 0)).
		Then(clientv3.OpPut(lk, string(value), clientv3.WithLease(grant.ID)), clientv3.OpGet(hk)).
		Else(clientv3.OpGet(lk), clientv3.OpGet(hk)).
		Commit()
	if err != nil || !resp.Succeeded {
		s.revoke(grant.ID, lk)
	}
	if err != nil {
		return nil, Header{}, 0, fmt.Errorf("image: lock %s/%s: %w", pool, name, err)
	}
	hkvs := resp.Responses[1].GetResponseRange().Kvs
	if len(hkvs) == 0 {
		return nil, Header{}, 0, fmt.Errorf("%w: %s/%s", ErrNotFound, pool, name)
	}
	if !resp.Succeeded {
		lkvs := resp.Responses[0].GetResponseRange().Kvs
		if len(lkvs) == 0 { // released between the two reads of the txn: impossible, but say so
			return nil, Header{}, 0, fmt.Errorf("image: lock %s/%s: refused without a holder; try again", pool, name)
		}
		h, err := decodeHolder(lk, lkvs[0].Value)
		if err != nil {
			return nil, Header{}, 0, err
		}
		return nil, Header{}, 0, &LockedError{Pool: pool, Name: name, Holder: h}
	}
	hdr, err := decodeHeader(hk, hkvs[0].Value)
	if err != nil {
		s.revoke(grant.ID, lk)
		return nil, Header{}, 0, err
	}
	ttl := time.Duration(grant.TTL) * time.Second
	l := &leaseLock{cli: s.cli, log: s.log.With(zap.String("lock", lk)), key: lk, lease: grant.ID, ttl: ttl, now: s.cfg.Now,
		rev: resp.Header.Revision, deadline: start.Add(deadlineAfter(ttl))}
	l.lost, l.lose = context.WithCancelCause(context.Background())
	l.timer = time.AfterFunc(deadlineAfter(ttl), l.checkDeadline)
	return l, hdr, hkvs[0].ModRevision, nil
}

// revoke drops a lease, best effort, without the caller's context (which
// may be done).
func (s *Store) revoke(id clientv3.LeaseID, key string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := s.cli.Revoke(ctx, id); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		s.log.Debug("revoke lock lease", zap.String("key", key), zap.Error(err))
	}
}

// LockHolder returns who holds pool/name's lock, and whether anyone does.
func (s *Store) LockHolder(ctx context.Context, pool, name string) (Holder, bool, error) {
	lk := s.lockKey(pool, name)
	resp, err := s.cli.Get(ctx, lk)
	if err != nil {
		return Holder{}, false, fmt.Errorf("image: read lock %s: %w", lk, err)
	}
	if len(resp.Kvs) == 0 {
		return Holder{}, false, nil
	}
	h, err := decodeHolder(lk, resp.Kvs[0].Value)
	return h, err == nil, err
}

// BreakLock takes pool/name's lock away from its holder: it deletes the
// lock key and revokes the holder's lease, which fences the holder (see
// the package doc). It returns the old holder and its lease's TTL: a holder
// cut off from etcd may go on writing for up to that long, so wait it out
// before writing (Open with BreakLock does). Errors wrap ErrNotLocked,
// ErrLocked (the lock changed hands meanwhile; try again) or are the
// control plane's.
func (s *Store) BreakLock(ctx context.Context, pool, name string) (Holder, time.Duration, error) {
	lk := s.lockKey(pool, name)
	resp, err := s.cli.Get(ctx, lk)
	if err != nil {
		return Holder{}, 0, fmt.Errorf("image: break lock %s: %w", lk, err)
	}
	if len(resp.Kvs) == 0 {
		return Holder{}, 0, fmt.Errorf("%w: %s/%s", ErrNotLocked, pool, name)
	}
	kv := resp.Kvs[0]
	h, err := decodeHolder(lk, kv.Value)
	if err != nil {
		h = Holder{Host: "(unreadable lock record)"}
	}
	grace := time.Duration(ttlSeconds(s.cfg.LockTTL)) * time.Second
	if kv.Lease != 0 {
		if ttl, err := s.cli.TimeToLive(ctx, clientv3.LeaseID(kv.Lease)); err == nil && ttl.GrantedTTL > 0 {
			grace = time.Duration(ttl.GrantedTTL) * time.Second
		}
	}
	tresp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(lk), "=", kv.ModRevision)).
		Then(clientv3.OpDelete(lk)).
		Commit()
	if err != nil {
		return Holder{}, 0, fmt.Errorf("image: break lock %s: %w", lk, err)
	}
	if !tresp.Succeeded {
		return Holder{}, 0, fmt.Errorf("%w: %s/%s: the lock changed hands while it was being broken; try again", ErrLocked, pool, name)
	}
	if kv.Lease != 0 {
		s.revoke(clientv3.LeaseID(kv.Lease), lk)
	}
	s.log.Warn("image lock broken", zap.String("image", pool+"/"+name), zap.Stringer("holder", h))
	return h, grace, nil
}
