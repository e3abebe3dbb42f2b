package clustermap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Service is a gateway's announcement in the control plane: which gateway
// (Kind: "nbd", "nfs") runs on which host, where it listens and what it
// serves, or why it does not run there. `tsumiki status` lists them.
type Service struct {
	Kind    string    `json:"kind"`
	Host    string    `json:"host"`
	Running bool      `json:"running"`
	Addr    string    `json:"addr,omitempty"`
	Serves  string    `json:"serves,omitempty"` // e.g. "image rbd/share as /data"
	Reason  string    `json:"reason,omitempty"` // why it is not running
	Since   time.Time `json:"since"`
}

func (s *Store) serviceKey(kind, host string) string {
	return s.svcPrefix + kind + "/" + host
}

// Announce puts svc under <prefix>/services/<kind>/<host> on a lease of
// ttl (0: DefaultLivenessTTL) and keeps it until ctx is done; then it
// revokes the lease, so the announcement ends with its announcer (a
// crashed one's after ttl). To change what is announced, end ctx and
// announce again. Like KeepAlive it re-announces after losing the lease and
// returns nil when ctx is done; ErrInvalid for an empty kind or host or one
// holding "/".
func (s *Store) Announce(ctx context.Context, svc Service, ttl time.Duration) error {
	if svc.Kind == "" || svc.Host == "" || strings.Contains(svc.Kind+svc.Host, "/") {
		return errorf(ErrInvalid, "announce service", "kind %q and host %q must be non-empty and hold no '/'", svc.Kind, svc.Host)
	}
	if ttl <= 0 {
		ttl = DefaultLivenessTTL
	}
	if svc.Since.IsZero() {
		svc.Since = time.Now().UTC()
	}
	val, err := json.Marshal(svc)
	if err != nil {
		return err
	}
	key := s.serviceKey(svc.Kind, svc.Host)
	log := s.log.With(zap.String("service", key))
	backoff := 100 * time.Millisecond
	for {
		err := s.announceOnce(ctx, key, string(val), int64(math.Ceil(ttl.Seconds())))
		if ctx.Err() != nil {
			return nil
		}
		log.Warn("service announcement lost; announcing again", zap.Error(err))
		if sleep(ctx, backoff) != nil {
			return nil
		}
		backoff = min(2*backoff, maxRetryBackoff)
	}
}

func (s *Store) announceOnce(ctx context.Context, key, val string, ttlSecs int64) error {
	lease, err := s.cli.Grant(ctx, ttlSecs)
	if err != nil {
		return fmt.Errorf("clustermap: grant lease for %s: %w", key, err)
	}
	defer s.revoke(lease.ID, key, s.log)
	if _, err := s.cli.Put(ctx, key, val, clientv3.WithLease(lease.ID)); err != nil {
		return fmt.Errorf("clustermap: put %s: %w", key, err)
	}
	ch, err := s.cli.KeepAlive(ctx, lease.ID)
	if err != nil {
		return fmt.Errorf("clustermap: keep %s alive: %w", key, err)
	}
	for range ch {
	}
	return fmt.Errorf("%w: %s", errLeaseLost, key)
}

// Services returns the current announcements, sorted by kind and host.
// Errors: etcd's (wrapped), or ErrCorrupt for an undecodable value.
func (s *Store) Services(ctx context.Context) ([]Service, error) {
	resp, err := s.cli.Get(ctx, s.svcPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("clustermap: list services: %w", err)
	}
	var out []Service
	var bad error
	for _, kv := range resp.Kvs {
		var svc Service
		if err := json.Unmarshal(kv.Value, &svc); err != nil {
			bad = errors.Join(bad, errorf(ErrCorrupt, "decode service "+string(kv.Key), "%v", err))
			continue
		}
		out = append(out, svc)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Host < out[j].Host
	})
	return out, bad
}
