package placement

import (
	"fmt"
	"slices"
	"strings"
)

// Check reports whether rule can be placed on devs, that is whether Map
// returns rule.Size devices for every PG (Map draws from the same eligible
// devices for every PG, so it fills all PGs or none).
//
// It returns nil, an error wrapping ErrBadRule for a malformed rule (Size
// below 1, unknown Domain), or an error wrapping ErrUnplaceable whose
// message says, in operator words, what is missing and what to do, e.g.
//
//	placement: pool needs 3 distinct hosts with device class "hdd", only 2 have one (h0, h1): add hosts, lower --size, or use --failure-domain osd
func Check(devs []Device, rule Rule) error {
	if rule.Size < 1 {
		return &ruleError{
			msg:  fmt.Sprintf("placement: pool size %d is below 1: a pool keeps at least one replica", rule.Size),
			kind: ErrBadRule,
		}
	}
	if !rule.Domain.valid() {
		return &ruleError{
			msg:  fmt.Sprintf("placement: unknown failure domain %q (want host or osd)", rule.Domain),
			kind: ErrBadRule,
		}
	}
	if rule.Class != "" && !hasClass(devs, rule.Class) {
		return unplaceable("placement: pool wants device class %q, but no device has it (classes: %s): add devices of that class or change the pool's device class",
			rule.Class, list(classes(devs)))
	}
	s := survey(devs, rule)
	if rule.Domain == DomainOSD {
		if len(s.ids) >= rule.Size {
			return nil
		}
		of := ""
		if rule.Class != "" {
			of = fmt.Sprintf(" of class %q", rule.Class)
		}
		return unplaceable("placement: pool needs %s%s, %s: %s", plural(rule.Size, "device", "devices"), of,
			counted(len(s.ids), "is in with positive weight", "are in with positive weight", osdNames(s.ids)),
			advice("add devices", s.idle, rule.Size, -1))
	}
	if len(s.hosts) >= rule.Size {
		return nil
	}
	// Devices out of play on a host that does not count yet are worth
	// bringing back; on a counted host they would not help.
	var useful []int32
	for _, d := range s.idleDevs {
		if !slices.Contains(s.hosts, d.Host) {
			useful = append(useful, d.ID)
		}
	}
	slices.Sort(useful)
	useful = slices.Compact(useful)
	with := "an in device of positive weight"
	if rule.Class != "" {
		with = fmt.Sprintf("device class %q", rule.Class)
	}
	return unplaceable("placement: pool needs %s with %s, %s: %s", plural(rule.Size, "host", "distinct hosts"), with,
		counted(len(s.hosts), "has one", "have one", s.hosts),
		advice("add hosts", useful, rule.Size, len(s.ids)))
}

// eligibleSet is what Check learns from one pass over devs.
type eligibleSet struct {
	ids      []int32  // eligible device ids, sorted, distinct
	hosts    []string // hosts with an eligible device, sorted, distinct
	idleDevs []Device // devices of the rule's class that are out or weigh nothing
	idle     []int32  // their ids, sorted
}

func survey(devs []Device, rule Rule) eligibleSet {
	var s eligibleSet
	for _, d := range devs {
		switch {
		case d.ID < 0 || (rule.Class != "" && d.Class != rule.Class):
		case eligible(d, rule) == 0:
			s.idleDevs = append(s.idleDevs, d)
			s.idle = append(s.idle, d.ID)
		default:
			s.ids = append(s.ids, d.ID)
			s.hosts = append(s.hosts, d.Host)
		}
	}
	slices.Sort(s.ids)
	s.ids = slices.Compact(s.ids)
	slices.Sort(s.hosts)
	s.hosts = slices.Compact(s.hosts)
	slices.Sort(s.idle)
	s.idle = slices.Compact(s.idle)
	return s
}

func unplaceable(format string, args ...any) error {
	return &ruleError{msg: fmt.Sprintf(format, args...), kind: ErrUnplaceable}
}

func hasClass(devs []Device, class string) bool {
	return slices.ContainsFunc(devs, func(d Device) bool { return d.Class == class })
}

func classes(devs []Device) []string {
	var cs []string
	for _, d := range devs {
		cs = append(cs, d.Class)
	}
	slices.Sort(cs)
	return slices.Compact(cs)
}

// plural formats a count with its noun: "1 host", "3 distinct hosts".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// counted says how many of the needed things exist: "none has one",
// "only 1 has one (h0)", "only 2 have one (h0, h1)".
func counted(n int, one, many string, names []string) string {
	switch n {
	case 0:
		return "none " + one
	case 1:
		return fmt.Sprintf("only 1 %s (%s)", one, list(names))
	default:
		return fmt.Sprintf("only %d %s (%s)", n, many, list(names))
	}
}

// advice lists what the operator can do, most direct first.
// eligibleDevs >= size adds the per-device failure domain as a way out;
// pass -1 when the rule already uses it.
func advice(add string, idle []int32, size, eligibleDevs int) string {
	acts := []string{add}
	if len(idle) > 0 {
		acts = append(acts, "mark in or reweight "+list(osdNames(idle)))
	}
	acts = append(acts, "lower --size")
	if eligibleDevs >= size {
		acts = append(acts, "use --failure-domain osd")
	}
	if len(acts) == 2 {
		return acts[0] + " or " + acts[1]
	}
	return strings.Join(acts[:len(acts)-1], ", ") + ", or " + acts[len(acts)-1]
}

func osdNames(ids []int32) []string {
	names := make([]string, len(ids))
	for i, id := range ids {
		names[i] = fmt.Sprintf("osd.%d", id)
	}
	return names
}

// list joins names for a message, quoting empty ones and eliding past
// eight so a large cluster does not produce a wall of text.
func list(names []string) string {
	const maxNames = 8
	shown := make([]string, 0, min(len(names), maxNames))
	for i, n := range names {
		if i == maxNames {
			break
		}
		if n == "" {
			n = `""`
		}
		shown = append(shown, n)
	}
	s := strings.Join(shown, ", ")
	if len(names) > maxNames {
		s += fmt.Sprintf(" and %d more", len(names)-maxNames)
	}
	return s
}
