// Package placement decides where data lives: it maps an object name to a
// placement group (PGOf) and a PG to the ordered set of devices that hold its
// replicas (Map), and tells an operator whether a pool's rule can be placed
// at all (Check). It is tsumiki's CRUSH: any process that holds the same
// cluster map computes the same answer, with no lookup table to store or
// ship.
//
// The core is pure: no goroutines, no clocks, no IO, no package state. Every
// function is deterministic, depends only on its arguments and is safe for
// concurrent use.
//
// # Algorithm
//
// Straw2 over failure domains (design decision 1). For a PG, every eligible
// device draws a straw, ln(u)/weight with u a hash of (pg, pool, device id)
// (straw2.go). For DomainOSD the longest Size straws win. For DomainHost a
// host's straw is the longest straw among its eligible devices. The longest
// of several straw2 draws is distributed as one straw2 draw weighted with
// their summed weight, so this is straw2 over host buckets weighted with
// the sum of their devices' weights; the device that drew the host's straw
// is its replica, chosen in proportion to its weight inside the host. The Size hosts with the longest
// straws hold the PG, in straw order: the first is the primary.
//
// Unlike CRUSH, there is no "r + ftotal" retry on collisions: ranking the
// domains by one straw each gives the same distribution as CRUSH's retries
// (weighted sampling without replacement) and two guarantees CRUSH only
// approximates:
//
//   - Map returns fewer than Size devices only when fewer than Size failure
//     domains have an eligible device; there is no try limit to exhaust.
//   - Only the data that must move moves: adding a device or raising its
//     weight changes a replica set only by that device entering it;
//     removing it, marking it out or lowering its weight only by that device
//     leaving it (its seat goes to the next longest straw). The other members
//     keep their relative order. This holds for a device added to an
//     existing host too, where two-level CRUSH, whose host bucket then
//     weighs more, also moves data onto the host's old devices.
//
// Like Ceph (the "multi-pick anomaly"), shares are exactly proportional to
// weight only for the first replica. When a pool's size is close to the
// number of domains, heavy domains hold somewhat less and light ones
// somewhat more than their weight share of all replicas, because no PG may
// hold two replicas in one domain.
//
// # Contract
//
// The hashes (hash.go), the fixed-point straw arithmetic (straw2.go) and the
// tie-break (lower device id wins) are part of the on-disk contract: changing
// any of them moves nearly all data of every existing cluster.
//
// # Who may import it
//
// storage/clustermap (validating pools with Check), storage/client (locating
// objects), storage/osd (which PGs a device holds, whom to replicate to) and
// cmd/tsumiki (pool create/set, pg ls, osd tree). It imports only the
// standard library.
package placement

import (
	"cmp"
	"fmt"
	"slices"
)

// Domain is the failure domain replicas of one PG must not share.
type Domain string

// The failure domains a rule may ask for.
const (
	DomainOSD  Domain = "osd"  // no two replicas on one device
	DomainHost Domain = "host" // no two replicas on one host
)

// ParseDomain parses a failure domain as an operator writes it ("host" or
// "osd"). Any other string gives an error wrapping ErrBadRule.
func ParseDomain(s string) (Domain, error) {
	d := Domain(s)
	if !d.valid() {
		return "", &ruleError{
			msg:  fmt.Sprintf("placement: unknown failure domain %q (want host or osd)", s),
			kind: ErrBadRule,
		}
	}
	return d, nil
}

func (d Domain) valid() bool { return d == DomainOSD || d == DomainHost }

// Device is one OSD as placement sees it.
//
// IDs must be unique within the slice given to Map and Check, and >= 0;
// devices with a negative id are never chosen. With duplicate ids Map still
// never returns an id twice, but may return fewer devices than it could and
// its result may depend on the slice order.
type Device struct {
	ID     int32   // OSD id, >= 0
	Host   string  // failure-domain bucket for DomainHost
	Class  string  // device class, e.g. "hdd", "ssd"
	Weight float64 // capacity weight (e.g. TiB); <= 0 means never chosen
	In     bool    // false: marked out, never chosen (a down-but-in device keeps its seat; up/down is NOT an input)
}

// Rule is what a pool asks for.
type Rule struct {
	PoolID uint32
	Size   int    // replicas wanted
	Class  string // "" = any class
	Domain Domain
}

// eligible returns the fixed-point weight of d under rule, or 0 when rule
// may not place a replica on d.
func eligible(d Device, rule Rule) uint64 {
	if !d.In || d.ID < 0 || (rule.Class != "" && d.Class != rule.Class) {
		return 0
	}
	return fixedWeight(d.Weight)
}

// Map returns the ordered replica set (primary first) of PG pg of the pool
// described by rule, drawn with straw2 from devs (see the package doc).
//
// It returns fewer than rule.Size ids only when there are not enough
// distinct failure domains with an eligible device; it never returns two
// devices of the same failure domain, never a device that is not In, has
// Weight <= 0, or whose class differs from rule.Class (when set). The result
// depends only on the set of devices (not their order in the slice), the
// rule and pg. For a rule Check rejects as malformed (Size < 1, unknown
// Domain) it returns nil.
//
// Map does not modify devs; the result is a new slice owned by the caller.
func Map(devs []Device, rule Rule, pg uint32) []int32 {
	if rule.Size < 1 || !rule.Domain.valid() {
		return nil
	}
	top := make([]candidate, 0, min(rule.Size, len(devs))+1)
	for _, c := range candidates(devs, rule, pg) {
		top = offer(top, c, rule.Size)
	}
	out := make([]int32, 0, len(top))
	for _, c := range top {
		if !slices.Contains(out, c.id) { // only with duplicate ids in devs
			out = append(out, c.id)
		}
	}
	return out
}

// offer inserts c into top, the size best candidates seen so far, best
// first. A partial insertion sort: Size is small, devices may be many.
func offer(top []candidate, c candidate, size int) []candidate {
	i := len(top)
	for i > 0 && compareCandidates(c, top[i-1]) < 0 {
		i--
	}
	if i == size {
		return top
	}
	top = slices.Insert(top, i, c)
	if len(top) > size {
		top = top[:size]
	}
	return top
}

// candidate is the longest straw of one failure domain for one PG.
type candidate struct {
	id   int32  // the device that drew it
	host string // its host, for a total order even with duplicate ids
	s    straw
}

// candidates draws a straw for every eligible device and keeps the longest
// one per failure domain, in no particular order.
func candidates(devs []Device, rule Rule, pg uint32) []candidate {
	cands := make([]candidate, 0, len(devs))
	var byHost map[string]int // DomainHost: host -> index in cands
	if rule.Domain == DomainHost {
		byHost = make(map[string]int)
	}
	for _, d := range devs {
		w := eligible(d, rule)
		if w == 0 {
			continue
		}
		c := candidate{id: d.ID, host: d.Host, s: drawStraw(pg, rule.PoolID, d.ID, w)}
		if byHost == nil {
			cands = append(cands, c)
			continue
		}
		i, seen := byHost[d.Host]
		switch {
		case !seen:
			byHost[d.Host] = len(cands)
			cands = append(cands, c)
		case compareCandidates(c, cands[i]) < 0:
			cands[i] = c
		}
	}
	return cands
}

// compareCandidates orders the longest straw first; equal straws go to the
// lower device id (part of the placement contract), then to the lower host
// name, so the order is total and independent of the input order.
func compareCandidates(a, b candidate) int {
	switch {
	case a.s.beats(b.s):
		return -1
	case b.s.beats(a.s):
		return 1
	}
	if c := cmp.Compare(a.id, b.id); c != 0 {
		return c
	}
	return cmp.Compare(a.host, b.host)
}
