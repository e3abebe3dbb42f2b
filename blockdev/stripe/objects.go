package stripe

// Range is a byte range of an image.
type Range struct {
	Offset, Length int64
}

// End is Offset + Length.
func (r Range) End() int64 { return r.Offset + r.Length }

// ObjectCount returns how many objects an image of size bytes can touch:
// objects 0 .. ObjectCount-1 hold every image byte below size, and no
// higher-numbered object holds any. (With stripe count > 1 the last object
// set may be only partly used.)
func ObjectCount(l Layout, size int64) uint64 {
	if size <= 0 {
		return 0
	}
	set := l.SetSize()
	n := (size / set) * l.StripeCount
	if rem := size % set; rem > 0 {
		n += min(l.StripeCount, ceilDiv(rem, l.StripeUnit))
	}
	return uint64(n)
}

// ObjectLen returns how many bytes of object obj hold image bytes below
// size. They are always the object's first ObjectLen bytes, so:
//   - 0: the object lies wholly past size (shrink deletes it);
//   - ObjectSize: it lies wholly below size;
//   - otherwise: shrinking to size truncates it to ObjectLen bytes.
func ObjectLen(l Layout, obj uint64, size int64) int64 {
	if obj >= ObjectCount(l, size) {
		return 0
	}
	su, sc := l.StripeUnit, l.StripeCount
	spo := l.ObjectSize / su
	set, pos := int64(obj)/sc, int64(obj)%sc
	blocks := ceilDiv(size, su) // stripe units with at least one byte below size
	// The object's k-th unit is image unit (set*spo+k)*sc+pos; count the
	// k in [0, spo) whose unit starts below size.
	n := min(ceilDiv(blocks-pos, sc)-set*spo, spo)
	if n <= 0 {
		return 0
	}
	last := (set*spo+n-1)*sc + pos
	return (n-1)*su + min(su, size-last*su)
}

// ObjectRanges returns the image ranges held by the first objLen bytes of
// object obj (objLen in [0, ObjectSize]), in increasing order, adjacent
// ranges merged. With stripe count 1 that is one range.
func ObjectRanges(l Layout, obj uint64, objLen int64) []Range {
	if objLen <= 0 {
		return nil
	}
	if l.StripeCount == 1 {
		return []Range{{Offset: int64(obj) * l.ObjectSize, Length: objLen}}
	}
	su := l.StripeUnit
	var out []Range
	for k := int64(0); k*su < objLen; k++ {
		r := Range{Offset: ToImage(l, obj, k*su), Length: min(su, objLen-k*su)}
		if n := len(out) - 1; n >= 0 && out[n].End() == r.Offset {
			out[n].Length += r.Length
			continue
		}
		out = append(out, r)
	}
	return out
}

// ceilDiv is ⌈a/b⌉ for b > 0 and any a (Go's division truncates, which
// is the ceiling for negative quotients).
func ceilDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a > 0 {
		q++
	}
	return q
}
