// Package client is the Go library every tsumiki consumer uses to reach
// objects: the `tsumiki object` verbs and, later, the block layer. It reads
// the cluster map from the control plane, computes placement locally, sends
// each request to the PG's leader in one round trip, and retries on
// not-leader, stale-epoch and degraded answers with backoff within the
// caller's deadline. A read that meets a corrupt block on the leader is
// served from another replica.
//
// Who may import it: cmd/tsumiki, blockdev/..., nfsgw and tests. It must not
// import storage/osd or storage/chunkstore (a test enforces this).
package client
