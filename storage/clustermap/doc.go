// Package clustermap keeps tsumiki's cluster map in etcd: the OSDs (id, host,
// device class, weight, addresses, in/out), the pools (size, min_size,
// pg_num, device class, failure domain), the maintenance flags and the epoch
// that versions them, plus each OSD's liveness. It also provides Dial, the
// one way every command connects to the control plane.
//
// # Placement
//
// A pool's PGs are placed (storage/placement) on the OSDs that were in
// when the pool was created, recorded in the map (Map.Placements), not on
// the OSDs in now: a PG's replicas are the members of its raft group, and
// only membership changes with backfill (which do not exist yet) may move
// them. Adding OSDs, marking them out or reweighting them changes where
// new pools go; a pool's size is fixed for the same reason.
//
// # Keys
//
// Under a prefix (default "/tsumiki"):
//
//	<prefix>/map        the whole Map as one JSON document. Every mutation
//	                    reads it, changes it, increments Epoch by exactly one
//	                    and writes it back in an etcd Txn that compares the
//	                    key's ModRevision (compare-and-swap), retrying a
//	                    bounded number of times on conflict. A change that
//	                    changes nothing is not written and bumps nothing.
//	<prefix>/up/<id>    present while OSD <id> is alive: attached to a lease
//	                    (TTL 10s by default) that the OSD keeps alive with
//	                    Store.KeepAlive. OSD.Up is filled from these keys
//	                    and is never part of the map value or its epoch.
//
// Other packages may keep their own keys under the same prefix (images,
// locks); this package reads and watches only the two above.
//
// # Concurrency
//
// A Store is safe for concurrent use; correctness across processes comes
// from the compare-and-swap, not from locks. A *Map is a value: callers own
// the maps they receive and may modify them (use Clone to keep a copy).
//
// Who may import it: cmd/tsumiki, storage/osd and storage/client (the map's
// readers and writers) and their tests. It imports storage/placement for the
// placement rules, never the other way round.
package clustermap
