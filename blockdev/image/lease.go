package image

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
)

// leaseLock is one held image lock: a key on an etcd lease. See the package
// doc for how the holder fences itself.
type leaseLock struct {
	cli   *clientv3.Client
	log   *zap.Logger
	key   string
	lease clientv3.LeaseID
	ttl   time.Duration // as granted by etcd
	now   func() time.Time

	// lost is canceled, with the reason (wrapping ErrFenced) as its cause,
	// once the lock is lost; IO contexts derive from it.
	lost context.Context
	lose context.CancelCauseFunc

	mu       sync.Mutex // guards the following
	rev      int64      // a revision at which the key was ours
	deadline time.Time  // when the lease may have expired, with margin
	timer    *time.Timer
	released bool
}

// deadlineAfter is how long after sending a renewal the lease is trusted:
// 4/5 of the TTL, leaving margin for clocks that run at different rates.
func deadlineAfter(ttl time.Duration) time.Duration { return ttl * 4 / 5 }

// ttlSeconds rounds d up to whole seconds, at least 1.
func ttlSeconds(d time.Duration) int64 { return max(1, int64(math.Ceil(d.Seconds()))) }

// err returns nil while the lock is held, else why not (wrapping
// ErrFenced). Passing the deadline fences.
func (l *leaseLock) err() error {
	if l.lost.Err() == nil {
		l.mu.Lock()
		late := l.now().After(l.deadline)
		l.mu.Unlock()
		if late {
			l.fence("the lease was not renewed in time (control plane unreachable?)")
		}
	}
	return context.Cause(l.lost)
}

// fence marks the lock lost, once; IO in flight is canceled.
func (l *leaseLock) fence(why string) {
	l.mu.Lock()
	released := l.released
	l.mu.Unlock()
	if released || l.lost.Err() != nil {
		return
	}
	l.log.Error("image lock lost; refusing further IO (fenced)", zap.String("why", why))
	l.lose(fmt.Errorf("%w: %s: %s", ErrFenced, l.key, why))
}

// checkDeadline runs on the deadline timer.
func (l *leaseLock) checkDeadline() { _ = l.err() }

// fenceAt is the lock's deadline: object writes sent under it must land
// by then or not at all (ioContext).
func (l *leaseLock) fenceAt() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.deadline
}

// renewed moves the deadline after a renewal sent at sent.
func (l *leaseLock) renewed(sent time.Time, ttl time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return
	}
	if d := sent.Add(deadlineAfter(ttl)); d.After(l.deadline) {
		l.deadline = d
		l.timer.Reset(d.Sub(l.now()))
	}
}

// run keeps the lease alive and watches the key until ctx ends (nil) or the
// lock is lost (an error wrapping ErrFenced).
func (l *leaseLock) run(ctx context.Context) error {
	grp, gctx := errgroup.WithContext(ctx)
	grp.Go(func() error { return l.renewLoop(gctx) })
	grp.Go(func() error { return l.watchLoop(gctx) })
	err := grp.Wait()
	if cause := context.Cause(l.lost); cause != nil {
		return cause
	}
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// renewLoop renews the lease three times per TTL.
func (l *leaseLock) renewLoop(ctx context.Context) error {
	every := l.ttl / 3
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-l.lost.Done():
			return context.Cause(l.lost)
		case <-t.C:
		}
		sent := l.now()
		rctx, cancel := context.WithTimeout(ctx, every)
		resp, err := l.cli.KeepAliveOnce(rctx, l.lease)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, rpctypes.ErrLeaseNotFound), err == nil && resp.TTL <= 0:
			l.fence("the lease is gone (the lock was broken or expired)")
			return context.Cause(l.lost)
		case err != nil:
			l.log.Warn("cannot renew the image lock's lease; retrying", zap.Error(err))
			if err := l.err(); err != nil {
				return err
			}
			t.Reset(min(every, time.Second))
			continue
		}
		l.renewed(sent, time.Duration(resp.TTL)*time.Second)
		t.Reset(every)
	}
}

// watchLoop fences as soon as the lock key is deleted or put on another
// lease. A broken watch (compaction, etcd restart) re-reads the key and
// watches again.
func (l *leaseLock) watchLoop(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		l.mu.Lock()
		rev := l.rev
		l.mu.Unlock()
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for resp := range l.cli.Watch(wctx, l.key, clientv3.WithRev(rev+1)) {
			if resp.Err() != nil {
				break
			}
			for _, ev := range resp.Events {
				if ev.Type == clientv3.EventTypeDelete || clientv3.LeaseID(ev.Kv.Lease) != l.lease {
					cancel()
					l.fence("the lock key was deleted or taken over (lock broken)")
					return context.Cause(l.lost)
				}
			}
			l.setRev(resp.Header.Revision)
		}
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		resp, err := l.cli.Get(ctx, l.key)
		if err == nil {
			if len(resp.Kvs) == 0 || clientv3.LeaseID(resp.Kvs[0].Lease) != l.lease {
				l.fence("the lock key was deleted or taken over (lock broken)")
				return context.Cause(l.lost)
			}
			l.setRev(resp.Header.Revision)
			backoff = 100 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// verify reads the lock key and fences if it is no longer on this lease.
// It returns the lock's state as err does.
func (l *leaseLock) verify(ctx context.Context) error {
	resp, err := l.cli.Get(ctx, l.key)
	if err == nil && (len(resp.Kvs) == 0 || clientv3.LeaseID(resp.Kvs[0].Lease) != l.lease) {
		l.fence("the lock key was deleted or taken over (lock broken)")
	}
	return l.err()
}

func (l *leaseLock) setRev(rev int64) {
	l.mu.Lock()
	l.rev = max(l.rev, rev)
	l.mu.Unlock()
}

// release gives the lock up: the lease is revoked, which deletes the key.
func (l *leaseLock) release(s *Store) {
	l.mu.Lock()
	if l.released {
		l.mu.Unlock()
		return
	}
	l.released = true
	l.timer.Stop()
	l.mu.Unlock()
	l.lose(fmt.Errorf("%w: released", ErrClosed))
	s.revoke(l.lease, l.key)
}
