package placement

import (
	"fmt"
	"slices"
	"testing"
)

// cluster returns perHost[i] devices on host "h<i>" for each i, ids
// numbered from 0 host after host, all "hdd", weight 1, in.
func cluster(perHost ...int) []Device {
	var devs []Device
	for h, n := range perHost {
		for range n {
			devs = append(devs, Device{ID: int32(len(devs)), Host: fmt.Sprintf("h%d", h), Class: "hdd", Weight: 1, In: true})
		}
	}
	return devs
}

// spread returns n devices spread round-robin over hosts hosts.
func spread(n, hosts int) []Device {
	per := make([]int, hosts)
	for i := range n {
		per[i%hosts]++
	}
	return cluster(per...)
}

// domainOf is the failure domain d belongs to under rule.
func domainOf(d Device, rule Rule) string {
	if rule.Domain == DomainHost {
		return "host " + d.Host
	}
	return fmt.Sprintf("osd.%d", d.ID)
}

// eligibleDomains counts the failure domains holding an eligible device,
// written naively from Map's contract rather than from its code.
func eligibleDomains(devs []Device, rule Rule) int {
	seen := map[string]bool{}
	for _, d := range devs {
		if d.In && d.Weight > 0 && d.ID >= 0 && (rule.Class == "" || d.Class == rule.Class) {
			seen[domainOf(d, rule)] = true
		}
	}
	return len(seen)
}

// checkReplicaSet fails tb unless got is a valid Map result for pg: no more
// than Size devices, each present in devs, in, weighted and of the rule's
// class, no two in one failure domain, and as many as the cluster allows.
func checkReplicaSet(tb testing.TB, devs []Device, rule Rule, pg uint32, got []int32) {
	tb.Helper()
	byID := map[int32]Device{}
	for _, d := range devs {
		byID[d.ID] = d
	}
	want := min(rule.Size, eligibleDomains(devs, rule))
	if len(got) != want {
		tb.Fatalf("pg %d: Map returned %d devices %v, want %d (size %d, %d eligible domains)",
			pg, len(got), got, want, rule.Size, eligibleDomains(devs, rule))
	}
	used := map[string]int32{}
	for _, id := range got {
		d, ok := byID[id]
		switch {
		case !ok:
			tb.Fatalf("pg %d: Map returned unknown device %d in %v", pg, id, got)
		case !d.In:
			tb.Fatalf("pg %d: Map returned out device %d in %v", pg, id, got)
		case d.Weight <= 0:
			tb.Fatalf("pg %d: Map returned device %d of weight %v in %v", pg, id, d.Weight, got)
		case rule.Class != "" && d.Class != rule.Class:
			tb.Fatalf("pg %d: Map returned device %d of class %q for class %q in %v", pg, id, d.Class, rule.Class, got)
		}
		dom := domainOf(d, rule)
		if other, dup := used[dom]; dup {
			tb.Fatalf("pg %d: devices %d and %d share failure domain %s in %v", pg, other, id, dom, got)
		}
		used[dom] = id
	}
}

// expectedShares returns, per device, the expected fraction of PGs whose
// replica set contains it: failure domains drawn one after another without
// replacement, each with probability proportional to its summed weight
// (what straw2 ranking gives), the device inside its domain in proportion
// to its weight. It enumerates every ordered draw, so keep clusters small.
func expectedShares(devs []Device, rule Rule) map[int32]float64 {
	type domain struct {
		weight float64
		devs   []Device
	}
	var doms []*domain
	index := map[string]*domain{}
	total := 0.0
	for _, d := range devs {
		if !d.In || d.Weight <= 0 || (rule.Class != "" && d.Class != rule.Class) {
			continue
		}
		key := domainOf(d, rule)
		if index[key] == nil {
			index[key] = &domain{}
			doms = append(doms, index[key])
		}
		index[key].weight += d.Weight
		index[key].devs = append(index[key].devs, d)
		total += d.Weight
	}
	pIn := make([]float64, len(doms))
	used := make([]bool, len(doms))
	var draw func(depth int, p, rest float64)
	draw = func(depth int, p, rest float64) {
		if depth == rule.Size {
			return
		}
		for i, d := range doms {
			if used[i] {
				continue
			}
			q := p * d.weight / rest
			pIn[i] += q
			used[i] = true
			draw(depth+1, q, rest-d.weight)
			used[i] = false
		}
	}
	draw(0, 1, total)
	shares := map[int32]float64{}
	for i, d := range doms {
		for _, dev := range d.devs {
			shares[dev.ID] = pIn[i] * dev.Weight / d.weight
		}
	}
	return shares
}

// without returns ids minus drop, keeping order.
func without(ids []int32, drop int32) []int32 {
	return slices.DeleteFunc(slices.Clone(ids), func(id int32) bool { return id == drop })
}
