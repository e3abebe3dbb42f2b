package placement

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

// TestMapGolden pins a few replica sets: the draw hash, the fixed-point
// straw and the tie-break are part of the placement contract, and this
// fails if any of them changes (which would move data in every cluster).
func TestMapGolden(t *testing.T) {
	devs := cluster(3, 3, 3, 3)
	for i := range devs {
		devs[i].Weight = 1 + float64(i%3)/2
	}
	tests := []struct {
		rule Rule
		pg   uint32
		want []int32
	}{
		{Rule{PoolID: 1, Size: 3, Domain: DomainHost}, 0, []int32{7, 5, 9}},
		{Rule{PoolID: 1, Size: 3, Domain: DomainHost}, 1, []int32{6, 2, 10}},
		{Rule{PoolID: 1, Size: 3, Domain: DomainHost}, 5, []int32{10, 8, 2}},
		{Rule{PoolID: 2, Size: 3, Domain: DomainOSD}, 0, []int32{8, 6, 5}},
		{Rule{PoolID: 2, Size: 3, Domain: DomainOSD}, 3, []int32{3, 7, 6}},
		{Rule{PoolID: 2, Size: 3, Domain: DomainOSD}, 4, []int32{11, 2, 4}},
	}
	for _, tt := range tests {
		if got := Map(devs, tt.rule, tt.pg); !slices.Equal(got, tt.want) {
			t.Errorf("Map(pool %d, %s, pg %d) = %v, want %v", tt.rule.PoolID, tt.rule.Domain, tt.pg, got, tt.want)
		}
	}
}

// TestMapDistribution is the balance criterion: 100,000 objects go through
// PGOf and Map, and every device holds within ±10% of its expected share of
// the replica slots. The expected share is computed by expectedShares (the
// weight share, corrected for "no two replicas in one domain"); wantRatio,
// when set, also checks the heavy device (id 0) against the average of the
// others directly.
func TestMapDistribution(t *testing.T) {
	const objects = 100_000
	const pgNum = 1 << 16 // many PGs per device, so object counts, not PG luck, dominate
	heavy := func(devs []Device) []Device { devs[0].Weight = 2; return devs }
	tests := []struct {
		name      string
		devs      []Device
		rule      Rule
		wantRatio float64 // device 0 against the mean of the others; 0 = not checked
	}{
		{"4 hosts x 3, host domain, size 3", cluster(3, 3, 3, 3), Rule{PoolID: 1, Size: 3, Domain: DomainHost}, 0},
		{"12 devices, osd domain, size 3", cluster(3, 3, 3, 3), Rule{PoolID: 1, Size: 3, Domain: DomainOSD}, 0},
		{"uneven hosts 1,2,3,4,5, host domain, size 3", cluster(1, 2, 3, 4, 5), Rule{PoolID: 3, Size: 3, Domain: DomainHost}, 0},
		{"4 hosts x 3, one weight 2, host domain, size 3", heavy(cluster(3, 3, 3, 3)), Rule{PoolID: 1, Size: 3, Domain: DomainHost}, 0},
		{"12 devices, one weight 2, osd domain, size 3", heavy(cluster(3, 3, 3, 3)), Rule{PoolID: 1, Size: 3, Domain: DomainOSD}, 0},
		{"24 devices, one weight 2, osd domain, size 3", heavy(spread(24, 8)), Rule{PoolID: 4, Size: 3, Domain: DomainOSD}, 2},
		{"12 devices, one weight 2, osd domain, size 1", heavy(cluster(3, 3, 3, 3)), Rule{PoolID: 5, Size: 1, Domain: DomainOSD}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			perPG := map[uint32]int{}
			for i := range objects {
				perPG[PGOf(fmt.Sprintf("rbd_data.%x.%016x", 42, i), pgNum)]++
			}
			counts := map[int32]int{}
			for pg, n := range perPG {
				set := Map(tt.devs, tt.rule, pg)
				if len(set) != tt.rule.Size {
					t.Fatalf("pg %d: %v, want %d replicas", pg, set, tt.rule.Size)
				}
				for _, id := range set {
					counts[id] += n
				}
			}
			shares := expectedShares(tt.devs, tt.rule)
			worst := 0.0
			for _, d := range tt.devs {
				want := objects * shares[d.ID]
				dev := (float64(counts[d.ID]) - want) / want
				worst = max(worst, math.Abs(dev))
				if math.Abs(dev) > 0.10 {
					t.Errorf("osd.%d (weight %v) holds %d replica slots, want %.0f ±10%% (off by %+.1f%%)",
						d.ID, d.Weight, counts[d.ID], want, 100*dev)
				}
			}
			t.Logf("worst deviation from expected share: %.2f%%", 100*worst)
			if tt.wantRatio == 0 {
				return
			}
			rest := 0
			for _, d := range tt.devs[1:] {
				rest += counts[d.ID]
			}
			ratio := float64(counts[0]) / (float64(rest) / float64(len(tt.devs)-1))
			t.Logf("weight-2 device holds %.3fx the mean of the others", ratio)
			if math.Abs(ratio-tt.wantRatio) > 0.10*tt.wantRatio {
				t.Errorf("weight-2 device holds %.3fx the mean of the others, want %v ±10%%", ratio, tt.wantRatio)
			}
		})
	}
}

// TestMapChangeMovesOnlyThatDevice is the movement criterion. For a change
// of one device d, over 10,000 PGs: growing d (adding it, raising its
// weight, marking it in) may only bring d into replica sets (new \ old ⊆
// {d}), shrinking d may only take it out (old \ new ⊆ {d}); the other
// members keep their relative order; and an added device takes at most 1.5×
// its optimal share, weight(d)/total weight, of all replica slots.
func TestMapChangeMovesOnlyThatDevice(t *testing.T) {
	const pgs = 10_000
	type change struct {
		name  string
		apply func([]Device) []Device // returns the changed copy
		grow  bool                    // d may only enter (true) or only leave
		added bool                    // d is new: check the moved fraction
	}
	changes := func(n int) []change {
		d := Device{ID: int32(n), Class: "hdd", Weight: 1, In: true}
		at := func(host string) func([]Device) []Device {
			return func(devs []Device) []Device { d := d; d.Host = host; return append(slices.Clone(devs), d) }
		}
		set := func(f func(*Device)) func([]Device) []Device {
			return func(devs []Device) []Device { devs = slices.Clone(devs); f(&devs[1]); return devs }
		}
		return []change{
			{"add device on a new host", at("hnew"), true, true},
			{"add device on an existing host", at("h0"), true, true},
			{"mark a device out", set(func(d *Device) { d.In = false }), false, false},
			{"raise a weight", set(func(d *Device) { d.Weight = 3 }), true, false},
			{"lower a weight", set(func(d *Device) { d.Weight = 0.25 }), false, false},
		}
	}
	for _, n := range []int{6, 9, 12} {
		for _, domain := range []Domain{DomainHost, DomainOSD} {
			for _, ch := range changes(n) {
				t.Run(fmt.Sprintf("%d devices/%s/%s", n, domain, ch.name), func(t *testing.T) {
					before := spread(n, (n+1)/2) // 2 devices per host (9: one host has 1)
					after := ch.apply(before)
					d := int32(1)
					if ch.added {
						d = int32(n)
					}
					rule := Rule{PoolID: 9, Size: 3, Domain: domain}
					moved := 0
					for pg := range uint32(pgs) {
						old, cur := Map(before, rule, pg), Map(after, rule, pg)
						entered, left := setMinus(cur, old), setMinus(old, cur)
						if !ch.grow {
							entered, left = left, entered
						}
						if len(entered) > 1 || (len(entered) == 1 && entered[0] != d) || len(left) > len(entered) {
							t.Fatalf("pg %d: %v -> %v: data moved to or from another device than osd.%d", pg, old, cur, d)
						}
						if !slices.Equal(without(common(old, cur), d), without(common(cur, old), d)) {
							t.Fatalf("pg %d: %v -> %v: the other replicas changed order", pg, old, cur)
						}
						moved += len(entered)
					}
					if !ch.added {
						return
					}
					total := 0.0
					for _, dev := range after {
						total += dev.Weight
					}
					optimal := float64(pgs*rule.Size) / total
					t.Logf("moved %d replica slots, %.2fx the optimal %.0f", moved, float64(moved)/optimal, optimal)
					if float64(moved) > 1.5*optimal {
						t.Errorf("adding osd.%d moved %d replica slots, more than 1.5x the optimal %.0f", d, moved, optimal)
					}
				})
			}
		}
	}
}

// common returns the ids of a that are also in b, in a's order.
func common(a, b []int32) []int32 {
	return slices.DeleteFunc(slices.Clone(a), func(id int32) bool { return !slices.Contains(b, id) })
}

// setMinus returns the ids of a that are not in b.
func setMinus(a, b []int32) []int32 {
	var out []int32
	for _, id := range a {
		if !slices.Contains(b, id) {
			out = append(out, id)
		}
	}
	return out
}

func BenchmarkMap(b *testing.B) {
	benches := []struct {
		name string
		devs []Device
		rule Rule
	}{
		{"4 hosts x 3/host", cluster(3, 3, 3, 3), Rule{PoolID: 1, Size: 3, Domain: DomainHost}},
		{"10 hosts x 10/host", spread(100, 10), Rule{PoolID: 1, Size: 3, Domain: DomainHost}},
		{"1000 devices/osd", spread(1000, 100), Rule{PoolID: 1, Size: 3, Domain: DomainOSD}},
	}
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			var pg uint32
			for b.Loop() {
				Map(bb.devs, bb.rule, pg)
				pg++
			}
		})
	}
}
