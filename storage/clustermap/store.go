package clustermap

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// DefaultPrefix is the etcd key prefix used when NewStore is given "".
const DefaultPrefix = "/tsumiki"

// maxCASAttempts bounds the read-modify-write loop of one mutation. Map
// changes are rare (operator commands, OSD registration), so running out
// means something is rewriting the map in a tight loop.
const maxCASAttempts = 64

// maxRetryBackoff caps the pause between attempts of the loops that never
// give up on their own (KeepAlive, Watch).
const maxRetryBackoff = 5 * time.Second

// Store reads and changes the cluster map in etcd. It is safe for
// concurrent use. It does not own the client: closing it is the caller's job.
type Store struct {
	cli       *clientv3.Client
	log       *zap.Logger
	mapKey    string // <prefix>/map
	upPrefix  string // <prefix>/up/
	svcPrefix string // <prefix>/services/

	mu     sync.Mutex                 // guards the following
	leases map[int32]clientv3.LeaseID // liveness leases KeepAlive holds now
	full   map[int32]bool             // what SetFull last said, per OSD
}

// NewStore returns a Store using cli under prefix ("" means DefaultPrefix).
// log may be nil (no logging). It starts nothing.
func NewStore(cli *clientv3.Client, prefix string, log *zap.Logger) *Store {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	prefix = strings.TrimRight(prefix, "/")
	if log == nil {
		log = zap.NewNop()
	}
	return &Store{cli: cli, log: log, mapKey: prefix + "/map", upPrefix: prefix + "/up/", svcPrefix: prefix + "/services/",
		leases: map[int32]clientv3.LeaseID{}, full: map[int32]bool{}}
}

// Load returns the current map with OSD.Up filled in, read at one etcd
// revision. A cluster that has never stored a map gets an empty map with
// Epoch 0. Errors are etcd's (wrapped) or wrap ErrCorrupt.
func (s *Store) Load(ctx context.Context) (*Map, error) {
	m, _, err := s.load(ctx)
	return m, err
}

// load reads the map and the up/ keys in one transaction and returns the
// revision they were read at.
func (s *Store) load(ctx context.Context) (*Map, int64, error) {
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(s.mapKey),
		clientv3.OpGet(s.upPrefix, clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, 0, fmt.Errorf("clustermap: load %s: %w", s.mapKey, err)
	}
	var value []byte
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		value = kvs[0].Value
	}
	m, err := s.decode(value)
	if err != nil {
		return nil, 0, err
	}
	up := make(map[int32]string)
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		if id, ok := s.upID(kv.Key); ok {
			up[id] = string(kv.Value)
		}
	}
	applyUp(m, up)
	return m, resp.Header.Revision, nil
}

// applyUp sets OSD.Up and OSD.Full from the live ids and their liveness
// values.
func applyUp(m *Map, up map[int32]string) {
	for i := range m.OSDs {
		v, ok := up[m.OSDs[i].ID]
		m.OSDs[i].Up = ok
		m.OSDs[i].Full = ok && strings.HasSuffix(v, fullSuffix)
	}
}

// fullSuffix ends the liveness value of an OSD that reports itself full.
const fullSuffix = " full"

// upKey is the liveness key of OSD id.
func (s *Store) upKey(id int32) string { return s.upPrefix + strconv.FormatInt(int64(id), 10) }

// upID parses a liveness key.
func (s *Store) upID(key []byte) (int32, bool) {
	rest, ok := strings.CutPrefix(string(key), s.upPrefix)
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(rest, 10, 32)
	return int32(id), err == nil
}

// decode parses a stored map; nil or empty means no map yet.
func (s *Store) decode(value []byte) (*Map, error) {
	m := &Map{}
	if len(value) == 0 {
		return m, nil
	}
	if err := json.Unmarshal(value, m); err != nil {
		return nil, fmt.Errorf("%w: %s: %v; restore the key from a backup (etcdctl snapshot) or ask for help before changing it by hand",
			ErrCorrupt, s.mapKey, err)
	}
	return m, nil
}

// mutate runs change on the current map and, if it reports a change, writes
// the map back with Epoch+1 using a compare-and-swap on the key's
// ModRevision, retrying on conflict. It returns the map as written (or as
// read, when nothing changed). Errors from change are returned as they are.
func (s *Store) mutate(ctx context.Context, op string, change func(m *Map) (bool, error)) (*Map, error) {
	for attempt := range maxCASAttempts {
		resp, err := s.cli.Get(ctx, s.mapKey)
		if err != nil {
			return nil, fmt.Errorf("clustermap: %s: read %s: %w", op, s.mapKey, err)
		}
		var value []byte
		var modRev int64
		if len(resp.Kvs) > 0 {
			value, modRev = resp.Kvs[0].Value, resp.Kvs[0].ModRevision
		}
		m, err := s.decode(value)
		if err != nil {
			return nil, fmt.Errorf("clustermap: %s: %w", op, err)
		}
		frozen := m.freezePlacements()
		changed, err := change(m)
		if err != nil {
			return nil, err
		}
		if !changed && !frozen {
			return m, nil
		}
		m.Epoch++
		data, err := json.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("clustermap: %s: encode map: %w", op, err)
		}
		tresp, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(s.mapKey), "=", modRev)).
			Then(clientv3.OpPut(s.mapKey, string(data))).
			Commit()
		if err != nil {
			return nil, fmt.Errorf("clustermap: %s: write %s: %w", op, s.mapKey, err)
		}
		if tresp.Succeeded {
			s.log.Info("cluster map changed", zap.String("op", op), zap.Uint64("epoch", m.Epoch))
			return m, nil
		}
		// Someone else changed the map first: back off a little, with
		// jitter so that contenders spread out, and redo the change.
		if err := sleep(ctx, time.Duration(rand.Int64N(int64(attempt+1)*int64(2*time.Millisecond)))); err != nil {
			return nil, fmt.Errorf("clustermap: %s: %w", op, err)
		}
	}
	return nil, fmt.Errorf("%w: %s: the map changed %d times while this change was retried; check for a runaway client and try again",
		ErrConflict, op, maxCASAttempts)
}

// sleep waits d or until ctx is done, returning ctx's error then.
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
