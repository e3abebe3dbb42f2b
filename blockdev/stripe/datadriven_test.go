package stripe

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestStripeDataDriven runs the transcripts in testdata/. Commands:
//
//	layout [object_size=S] [stripe_unit=S] [stripe_count=N]   set the layout (defaults applied) and validate it
//	validate [object_size=S] [stripe_unit=S] [stripe_count=N] validate without defaults
//	map off=S len=S                                           object extents of an image range
//	objects size=S                                            objects an image of size S uses, with ObjectLen and ObjectRanges
//	shrink from=S to=S                                        what shrinking does to each object
//
// Sizes take K and M suffixes (binary). Rewrite with
// go test ./blockdev/stripe -run DataDriven -rewrite.
func TestStripeDataDriven(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		l := Layout{}.WithDefaults()
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "layout", "validate":
				nl := Layout{
					ObjectSize:  sizeArg(t, d, "object_size", 0),
					StripeUnit:  sizeArg(t, d, "stripe_unit", 0),
					StripeCount: sizeArg(t, d, "stripe_count", 0),
				}
				if d.Cmd == "layout" {
					nl = nl.WithDefaults()
				}
				if err := nl.Validate(); err != nil {
					return err.Error() + "\n"
				}
				if d.Cmd == "layout" {
					l = nl
				}
				return fmt.Sprintf("ok: %v, set %d bytes\n", nl, nl.SetSize())
			case "map":
				var b strings.Builder
				for _, e := range Map(l, sizeArg(t, d, "off", 0), sizeArg(t, d, "len", 0)) {
					fmt.Fprintf(&b, "obj %d off %d len %d buf %d\n", e.Object, e.Offset, e.Length, e.BufOff)
				}
				if b.Len() == 0 {
					return "(none)\n"
				}
				return b.String()
			case "objects":
				size := sizeArg(t, d, "size", 0)
				n := ObjectCount(l, size)
				var b strings.Builder
				fmt.Fprintf(&b, "%d objects\n", n)
				for obj := range n {
					ol := ObjectLen(l, obj, size)
					fmt.Fprintf(&b, "obj %d len %d image %s\n", obj, ol, ranges(ObjectRanges(l, obj, ol)))
				}
				return b.String()
			case "shrink":
				from, to := sizeArg(t, d, "from", 0), sizeArg(t, d, "to", 0)
				var b strings.Builder
				for obj := range ObjectCount(l, from) {
					was, keep := ObjectLen(l, obj, from), ObjectLen(l, obj, to)
					switch {
					case keep == 0:
						fmt.Fprintf(&b, "obj %d: delete\n", obj)
					case keep < was:
						fmt.Fprintf(&b, "obj %d: truncate %d -> %d\n", obj, was, keep)
					default:
						fmt.Fprintf(&b, "obj %d: keep %d\n", obj, keep)
					}
				}
				return b.String()
			}
			d.Fatalf(t, "unknown command %q", d.Cmd)
			return ""
		})
	})
}

func ranges(rs []Range) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, fmt.Sprintf("[%d,%d)", r.Offset, r.End()))
	}
	return strings.Join(parts, " ")
}

// sizeArg reads an optional size argument with an optional K or M suffix.
func sizeArg(t *testing.T, d *datadriven.TestData, key string, def int64) int64 {
	if !d.HasArg(key) {
		return def
	}
	var s string
	d.ScanArgs(t, key, &s)
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		d.Fatalf(t, "%s=%s: %v", key, s, err)
	}
	return n * mult
}
