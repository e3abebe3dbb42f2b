package clustermap

import (
	"context"
	"errors"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// coalesceWindow is how long Watch waits after a change for more changes
// before it calls fn, so a burst (say, a whole host's OSDs going down) is
// delivered as one map.
const coalesceWindow = 25 * time.Millisecond

// Watch calls fn with the current map (Up filled in) and then again after
// every change of the map or of an OSD's liveness, with bursts coalesced,
// until ctx is done; then it returns nil. fn runs on Watch's goroutine, one
// call at a time, and owns the map it is given. After an etcd outage,
// leader loss or compaction Watch re-loads the map and calls fn with it, so
// fn may see the same epoch more than once. Watch never gives up on its
// own: while etcd is unreachable it logs and retries.
func (s *Store) Watch(ctx context.Context, fn func(*Map)) error {
	backoff := 100 * time.Millisecond
	for {
		m, rev, err := s.load(ctx)
		if err == nil {
			backoff = 100 * time.Millisecond
			fn(m.Clone())
			err = s.watchFrom(ctx, m, rev, fn)
		}
		if ctx.Err() != nil {
			return nil
		}
		lvl := zap.WarnLevel
		if errors.Is(err, ErrCorrupt) {
			lvl = zap.ErrorLevel
		}
		s.log.Log(lvl, "cluster map watch interrupted; reloading", zap.Error(err), zap.Duration("retry-in", backoff))
		if sleep(ctx, backoff) != nil {
			return nil
		}
		backoff = min(2*backoff, maxRetryBackoff)
	}
}

// watchFrom follows changes after revision rev, starting from cur, until an
// error or ctx done.
func (s *Store) watchFrom(ctx context.Context, cur *Map, rev int64, fn func(*Map)) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	mapCh := s.cli.Watch(wctx, s.mapKey, clientv3.WithRev(rev+1))
	upCh := s.cli.Watch(wctx, s.upPrefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))

	up := make(map[int32]string)
	for _, o := range cur.OSDs {
		if o.Up {
			up[o.ID] = livenessValue(o.ID, o.Full)
		}
	}
	var flush <-chan time.Time // non-nil while a change waits to be delivered
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case resp, ok := <-mapCh:
			if !ok {
				return errWatchClosed
			}
			if err := resp.Err(); err != nil {
				return err
			}
			for _, ev := range resp.Events {
				m := &Map{}
				if ev.Type == mvccpb.PUT {
					var err error
					if m, err = s.decode(ev.Kv.Value); err != nil {
						return err
					}
				}
				cur = m
			}
		case resp, ok := <-upCh:
			if !ok {
				return errWatchClosed
			}
			if err := resp.Err(); err != nil {
				return err
			}
			for _, ev := range resp.Events {
				if id, ok := s.upID(ev.Kv.Key); ok {
					if ev.Type == mvccpb.PUT {
						up[id] = string(ev.Kv.Value)
					} else {
						delete(up, id)
					}
				}
			}
		case <-flush:
			flush = nil
			applyUp(cur, up)
			fn(cur.Clone())
			continue
		}
		if flush == nil {
			flush = time.After(coalesceWindow)
		}
	}
}
