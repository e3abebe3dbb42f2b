package placement

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// randomCluster draws a cluster meant to hit the edges: few or many hosts,
// shared and unique classes, out devices, zero, negative, tiny and large
// weights, ids not in slice order.
func randomCluster(rng *rand.Rand) []Device {
	weights := []float64{0, -1, 1e-9, 0.5, 1, 1, 1, 2, 3.638, 7.277, 100}
	classes := []string{"hdd", "hdd", "ssd", "nvme"}
	hosts := 1 + rng.IntN(8)
	ids := rng.Perm(64)
	var devs []Device
	for h := range hosts {
		for range 1 + rng.IntN(5) {
			devs = append(devs, Device{
				ID:     int32(ids[len(devs)]),
				Host:   fmt.Sprintf("host-%d", h),
				Class:  classes[rng.IntN(len(classes))],
				Weight: weights[rng.IntN(len(weights))],
				In:     rng.IntN(8) != 0,
			})
		}
	}
	return devs
}

func randomRule(rng *rand.Rand) Rule {
	return Rule{
		PoolID: rng.Uint32N(4),
		Size:   1 + rng.IntN(5),
		Class:  []string{"", "", "hdd", "ssd", "nvme", "none"}[rng.IntN(6)],
		Domain: []Domain{DomainHost, DomainOSD}[rng.IntN(2)],
	}
}

// naiveMap is Map written the slow, obvious way and in floating point:
// sort all eligible devices by their straw2 draw ln((u+1)/2^32)/weight,
// then walk down the list taking each device whose failure domain is still
// free. nearTie reports whether two draws were too close for float64 to
// order reliably, in which case only Map's integer order counts.
func naiveMap(devs []Device, rule Rule, pg uint32) (ids []int32, nearTie bool) {
	type drawn struct {
		d    Device
		draw float64
	}
	var all []drawn
	for _, d := range devs {
		if d.In && d.Weight > 0 && d.ID >= 0 && (rule.Class == "" || d.Class == rule.Class) {
			u := drawHash(pg, rule.PoolID, d.ID)
			w := float64(fixedWeight(d.Weight)) / (1 << weightFracBits) // placement's weight quantum
			all = append(all, drawn{d, math.Log((float64(u)+1)/(1<<32)) / w})
		}
	}
	slices.SortFunc(all, func(a, b drawn) int {
		if c := cmp.Compare(b.draw, a.draw); c != 0 {
			return c
		}
		return cmp.Compare(a.d.ID, b.d.ID)
	})
	for i := 1; i < len(all); i++ {
		a, b := all[i-1].draw, all[i].draw
		if a-b <= 1e-12*math.Abs(b) {
			nearTie = true
		}
	}
	used := map[string]bool{}
	for _, x := range all {
		if len(ids) == rule.Size {
			break
		}
		if dom := domainOf(x.d, rule); !used[dom] {
			used[dom] = true
			ids = append(ids, x.d.ID)
		}
	}
	return ids, nearTie
}

// TestMapProperties runs Map over random clusters and rules and checks the
// contract: replica sets valid (checkReplicaSet: eligibility, classes,
// distinct failure domains, as full as the cluster allows), equal to the
// naive float version, independent of device order, and consistent with
// Check.
func TestMapProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	nearTies := 0
	for iter := range 3000 {
		devs, rule := randomCluster(rng), randomRule(rng)
		shuffled := slices.Clone(devs)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		err := Check(devs, rule)
		for range 8 {
			pg := rng.Uint32()
			got := Map(devs, rule, pg)
			checkReplicaSet(t, devs, rule, pg, got)
			if again := Map(shuffled, rule, pg); !slices.Equal(got, again) {
				t.Fatalf("iter %d pg %d: Map depends on device order: %v, shuffled %v", iter, pg, got, again)
			}
			if (err == nil) != (len(got) == rule.Size) {
				t.Fatalf("iter %d pg %d: Check = %v but Map returned %d of %d replicas", iter, pg, err, len(got), rule.Size)
			}
			want, nearTie := naiveMap(devs, rule, pg)
			if nearTie {
				nearTies++
				continue
			}
			if !slices.Equal(got, want) {
				t.Fatalf("iter %d pg %d %+v: Map = %v, naive straw2 = %v\ndevices %+v", iter, pg, rule, got, want, devs)
			}
		}
	}
	t.Logf("%d of %d comparisons with the naive version skipped as near ties", nearTies, 3000*8)
	if nearTies > 3000*8/100 {
		t.Errorf("%d of %d comparisons skipped as near ties; the reference check is not checking", nearTies, 3000*8)
	}
}

// FuzzMap feeds Map arbitrary clusters: each 4 input bytes make a device
// (id, host, class, weight and in from the bits), the first byte the rule.
func FuzzMap(f *testing.F) {
	f.Add([]byte{0x23, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, uint32(0))
	f.Add([]byte{0x05, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}, uint32(7))
	f.Add([]byte{0x47, 0x10, 0x21, 0x32, 0x43, 0x54, 0x65, 0x76, 0x87, 0x98, 0xa9, 0xba, 0xcb}, uint32(1<<31))
	f.Fuzz(func(t *testing.T, data []byte, pg uint32) {
		if len(data) == 0 {
			return
		}
		rule := Rule{
			PoolID: uint32(data[0] >> 6),
			Size:   int(data[0]&7) - 1, // -1..6: malformed sizes too
			Class:  []string{"", "a", "b", ""}[data[0]>>3&3],
			Domain: []Domain{DomainHost, DomainOSD}[data[0]>>5&1],
		}
		var devs []Device
		for b := data[1:]; len(b) >= 4 && len(devs) < 64; b = b[4:] {
			devs = append(devs, Device{
				ID:     int32(b[0]) - 8, // a few negative ids
				Host:   string(rune('a' + b[1]%6)),
				Class:  string(rune('a' + b[1]>>4%3)),
				Weight: float64(int(b[2])-16) / 8,
				In:     b[3]&1 == 1,
			})
		}
		devs = slices.CompactFunc(sortedByID(devs), func(a, b Device) bool { return a.ID == b.ID }) // ids unique
		got := Map(devs, rule, pg)
		if rule.Size < 1 {
			if got != nil || Check(devs, rule) == nil {
				t.Fatalf("size %d: Map = %v, Check = %v; want nil and an error", rule.Size, got, Check(devs, rule))
			}
			return
		}
		for i := range devs {
			if devs[i].ID < 0 {
				devs[i].In = false // checkReplicaSet's eligibility ignores ids
			}
		}
		checkReplicaSet(t, devs, rule, pg, got)
		slices.Reverse(devs)
		if again := Map(devs, rule, pg); !slices.Equal(got, again) {
			t.Fatalf("Map depends on device order: %v, reversed %v", got, again)
		}
	})
}

func sortedByID(devs []Device) []Device {
	slices.SortStableFunc(devs, func(a, b Device) int { return cmp.Compare(a.ID, b.ID) })
	return devs
}
