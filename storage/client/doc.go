// Package client is the Go library every tsumiki consumer uses to reach
// objects: the `tsumiki object` verbs and the block layer. It reads
// the cluster map from the control plane, computes placement locally, sends
// each request to the PG's leader in one round trip, and retries on
// not-leader, stale-epoch and degraded answers with backoff within the
// caller's deadline. A read that meets a corrupt block on the leader is
// served from another replica.
//
// A write never lands after its caller was told it failed, nor after a
// retry of it: every request carries when it was sent and how long its
// caller waits (the context's deadline, or an image lock's through
// WithFence), an OSD proposes a mutation only within that budget and
// wire.SettleFor of its sending, and a mutation that got no answer is
// waited for until it is settled before it is reported failed or sent
// again. One attempt at one OSD is bounded (attemptTimeout), and
// connections have TCP keepalives and a user timeout, so an OSD whose host
// went silent costs seconds, not the operation's whole deadline.
//
// Who may import it: cmd/tsumiki, blockdev/..., nfsgw and tests. It must not
// import storage/osd or storage/chunkstore (a test enforces this).
package client
