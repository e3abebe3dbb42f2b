// Package mon runs one member of tsumiki's control plane: an embedded etcd
// server (go.etcd.io/etcd/server/v3/embed) with the settings tsumiki wants —
// logging routed into the caller's zap logger at warn level, revision-based
// auto-compaction, an explicit backend quota and a data-directory lock so two
// mons never share one directory.
//
// A control plane has 1, 3 or 5 members. Everything else in tsumiki talks to
// it through go.etcd.io/etcd/client/v3 (see storage/clustermap), never
// through this package.
//
// Who may import it: cmd/tsumiki (the `mon` and `up` commands) and tests that
// need a real control plane. No storage, block or gateway package imports it.
package mon
