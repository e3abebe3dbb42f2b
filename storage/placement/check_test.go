package placement

import (
	"errors"
	"testing"
)

func TestParseDomain(t *testing.T) {
	tests := []struct {
		in      string
		want    Domain
		wantErr error
	}{
		{"host", DomainHost, nil},
		{"osd", DomainOSD, nil},
		{"", "", ErrBadRule},
		{"rack", "", ErrBadRule},
		{"Host", "", ErrBadRule},
	}
	for _, tt := range tests {
		got, err := ParseDomain(tt.in)
		if got != tt.want || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
			t.Errorf("ParseDomain(%q) = %q, %v; want %q, %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestCheck(t *testing.T) {
	ssdHost := func(devs []Device, host string) []Device {
		for i := range devs {
			if devs[i].Host == host {
				devs[i].Class = "ssd"
			}
		}
		return devs
	}
	out := func(devs []Device, ids ...int32) []Device {
		for _, id := range ids {
			devs[id].In = false
		}
		return devs
	}
	tests := []struct {
		name    string
		devs    []Device
		rule    Rule
		wantErr error
		wantMsg string // exact message when set
	}{
		{
			name: "3 hosts, size 3, host domain",
			devs: cluster(2, 2, 2), rule: Rule{Size: 3, Domain: DomainHost},
		},
		{
			name: "2 hosts, size 2, class hdd",
			devs: cluster(2, 2), rule: Rule{Size: 2, Class: "hdd", Domain: DomainHost},
		},
		{
			name: "2 hosts, size 3, osd domain",
			devs: cluster(2, 1), rule: Rule{Size: 3, Domain: DomainOSD},
		},
		{
			name: "2 hosts, size 3, host domain",
			devs: cluster(2, 2), rule: Rule{Size: 3, Class: "hdd", Domain: DomainHost},
			wantErr: ErrUnplaceable,
			wantMsg: `placement: pool needs 3 distinct hosts with device class "hdd", only 2 have one (h0, h1): add hosts, lower --size, or use --failure-domain osd`,
		},
		{
			name: "2 hosts, size 3, any class, too few devices for osd domain",
			devs: cluster(1, 1), rule: Rule{Size: 3, Domain: DomainHost},
			wantErr: ErrUnplaceable,
			wantMsg: `placement: pool needs 3 distinct hosts with an in device of positive weight, only 2 have one (h0, h1): add hosts or lower --size`,
		},
		{
			name: "third host only has ssd",
			devs: ssdHost(cluster(3, 3, 3), "h2"), rule: Rule{Size: 3, Class: "hdd", Domain: DomainHost},
			wantErr: ErrUnplaceable,
			wantMsg: `placement: pool needs 3 distinct hosts with device class "hdd", only 2 have one (h0, h1): add hosts, lower --size, or use --failure-domain osd`,
		},
		{
			name: "third host is out",
			devs: out(cluster(2, 2, 2), 4, 5), rule: Rule{Size: 3, Domain: DomainHost},
			wantErr: ErrUnplaceable,
			wantMsg: `placement: pool needs 3 distinct hosts with an in device of positive weight, only 2 have one (h0, h1): add hosts, mark in or reweight osd.4, osd.5, lower --size, or use --failure-domain osd`,
		},
		{
			name: "one host left",
			devs: out(cluster(1, 1, 1), 1, 2), rule: Rule{Size: 2, Domain: DomainHost},
			wantErr: ErrUnplaceable,
			wantMsg: `placement: pool needs 2 distinct hosts with an in device of positive weight, only 1 has one (h0): add hosts, mark in or reweight osd.1, osd.2, or lower --size`,
		},
		{
			name: "no devices at all",
			devs: nil, rule: Rule{Size: 1, Domain: DomainHost},
			wantErr: ErrUnplaceable,
			wantMsg: `placement: pool needs 1 host with an in device of positive weight, none has one: add hosts or lower --size`,
		},
		{
			name: "class with no devices",
			devs: ssdHost(cluster(2, 2, 2), "h0"), rule: Rule{Size: 1, Class: "nvme", Domain: DomainHost},
			wantErr: ErrUnplaceable,
			wantMsg: `placement: pool wants device class "nvme", but no device has it (classes: hdd, ssd): add devices of that class or change the pool's device class`,
		},
		{
			name: "class with no devices, osd domain",
			devs: cluster(2), rule: Rule{Size: 1, Class: "ssd", Domain: DomainOSD},
			wantErr: ErrUnplaceable,
		},
		{
			name: "osd domain, too few usable ssds",
			devs: func() []Device {
				d := ssdHost(cluster(2, 2), "h1")
				d[3].Weight = 0
				return d
			}(),
			rule:    Rule{Size: 2, Class: "ssd", Domain: DomainOSD},
			wantErr: ErrUnplaceable,
			wantMsg: `placement: pool needs 2 devices of class "ssd", only 1 is in with positive weight (osd.2): add devices, mark in or reweight osd.3, or lower --size`,
		},
		{
			name: "osd domain, none usable",
			devs: out(cluster(1, 1), 0, 1), rule: Rule{Size: 2, Domain: DomainOSD},
			wantErr: ErrUnplaceable,
			wantMsg: `placement: pool needs 2 devices, none is in with positive weight: add devices, mark in or reweight osd.0, osd.1, or lower --size`,
		},
		{
			name: "size 0", devs: cluster(3), rule: Rule{Size: 0, Domain: DomainOSD},
			wantErr: ErrBadRule,
			wantMsg: `placement: pool size 0 is below 1: a pool keeps at least one replica`,
		},
		{
			name: "negative size", devs: cluster(3), rule: Rule{Size: -1, Domain: DomainOSD},
			wantErr: ErrBadRule,
		},
		{
			name: "unknown domain", devs: cluster(3), rule: Rule{Size: 1, Domain: "rack"},
			wantErr: ErrBadRule,
			wantMsg: `placement: unknown failure domain "rack" (want host or osd)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.devs, tt.rule)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Check = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Check = %v, want an error wrapping %v", err, tt.wantErr)
			}
			if tt.wantMsg != "" && err.Error() != tt.wantMsg {
				t.Errorf("Check message:\n got %s\nwant %s", err, tt.wantMsg)
			}
		})
	}
}
