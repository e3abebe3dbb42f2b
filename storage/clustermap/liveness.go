package clustermap

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// DefaultLivenessTTL is the lease TTL of an OSD's liveness key: an OSD that
// dies without a clean shutdown shows down after at most this long.
const DefaultLivenessTTL = 10 * time.Second

// KeepAlive announces that OSD id is up: it grants a lease of ttl (0 means
// DefaultLivenessTTL, rounded up to whole seconds), puts <prefix>/up/<id> on
// it and keeps it alive until ctx is done. Then it revokes the lease, so the
// OSD shows down at once after a clean shutdown. If the lease is lost (etcd
// unreachable for longer than ttl), KeepAlive grants a new one once etcd
// answers again. It returns nil when ctx is done; it never gives up on its
// own.
func (s *Store) KeepAlive(ctx context.Context, id int32, ttl time.Duration) error {
	if id < 0 {
		return errorf(ErrInvalid, fmt.Sprintf("keep osd.%d alive", id), "OSD ids are not negative")
	}
	if ttl <= 0 {
		ttl = DefaultLivenessTTL
	}
	secs := int64(math.Ceil(ttl.Seconds()))
	log := s.log.With(zap.Int32("osd", id))
	backoff := 100 * time.Millisecond
	for {
		start := time.Now()
		err := s.keepAliveOnce(ctx, id, secs, log)
		if ctx.Err() != nil {
			return nil
		}
		log.Warn("liveness lease lost; announcing again", zap.Error(err))
		if time.Since(start) > ttl {
			backoff = 100 * time.Millisecond
		}
		if sleep(ctx, backoff) != nil {
			return nil
		}
		backoff = min(2*backoff, maxRetryBackoff)
	}
}

// keepAliveOnce runs one lease from grant to loss or ctx done.
func (s *Store) keepAliveOnce(ctx context.Context, id int32, ttlSecs int64, log *zap.Logger) error {
	key := s.upKey(id)
	lease, err := s.cli.Grant(ctx, ttlSecs)
	if err != nil {
		return fmt.Errorf("clustermap: grant liveness lease for %s: %w", key, err)
	}
	kctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer s.revoke(lease.ID, key, log)

	s.mu.Lock()
	s.leases[id] = lease.ID
	full := s.full[id]
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.leases, id)
		s.mu.Unlock()
	}()
	if _, err := s.cli.Put(kctx, key, livenessValue(id, full), clientv3.WithLease(lease.ID)); err != nil {
		return fmt.Errorf("clustermap: put %s: %w", key, err)
	}
	ch, err := s.cli.KeepAlive(kctx, lease.ID)
	if err != nil {
		return fmt.Errorf("clustermap: keep %s alive: %w", key, err)
	}
	log.Info("osd announced up", zap.String("key", key), zap.Int64("lease", int64(lease.ID)))
	for range ch {
		// Each message is one renewal; the channel closes when the lease
		// expired without a renewal, or when kctx ends.
	}
	return fmt.Errorf("%w: %s", errLeaseLost, key)
}

// livenessValue is what an OSD's liveness key holds.
func livenessValue(id int32, full bool) string {
	v := strconv.FormatInt(int64(id), 10)
	if full {
		v += fullSuffix
	}
	return v
}

// SetFull records whether OSD id's device is full; the OSD's liveness key
// (kept by KeepAlive in this Store) carries it to every map watcher. While
// the OSD has no live lease it is remembered for the next one. Errors:
// etcd's, from rewriting the key.
func (s *Store) SetFull(ctx context.Context, id int32, full bool) error {
	s.mu.Lock()
	s.full[id] = full
	lease, ok := s.leases[id]
	s.mu.Unlock()
	if !ok {
		return nil
	}
	if _, err := s.cli.Put(ctx, s.upKey(id), livenessValue(id, full), clientv3.WithLease(lease)); err != nil {
		return fmt.Errorf("clustermap: put %s: %w", s.upKey(id), err)
	}
	return nil
}

// revoke drops the lease (and with it the up key), best effort, without
// waiting on the caller's (possibly done) context.
func (s *Store) revoke(lease clientv3.LeaseID, key string, log *zap.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := s.cli.Revoke(ctx, lease); err != nil {
		log.Warn("cannot revoke the liveness lease; the OSD shows up until the lease expires", zap.String("key", key), zap.Error(err))
	}
}
