package stripe

// Extent is one piece of an image range that lies in one object, contiguous
// both in the object and in the caller's buffer.
type Extent struct {
	Object uint64 // object number
	Offset int64  // where the piece starts in the object
	Length int64  // bytes, > 0
	BufOff int64  // where the piece starts in the caller's buffer (image offset - off)
}

// Map splits the image range [off, off+length) into object extents, in
// buffer order. Pieces that are adjacent in the same object and in the
// buffer are merged, so with stripe count 1 each object touched appears
// once. A length of 0 or less maps to nothing.
func Map(l Layout, off, length int64) []Extent {
	if length <= 0 {
		return nil
	}
	su, sc, os := l.StripeUnit, l.StripeCount, l.ObjectSize
	if sc == 1 {
		// One object per set: consecutive units of an object are
		// consecutive in the image, so the object is the unit.
		su = os
	}
	spo := os / su // stripe units per object
	out := make([]Extent, 0, min(length/su+2, 1024))
	for done := int64(0); done < length; {
		pos := off + done
		block, inBlock := pos/su, pos%su
		stripeNo := block / sc
		obj := uint64((stripeNo/spo)*sc + block%sc)
		objOff := (stripeNo%spo)*su + inBlock
		n := min(su-inBlock, length-done)
		if k := len(out) - 1; k >= 0 && out[k].Object == obj && out[k].Offset+out[k].Length == objOff {
			out[k].Length += n
		} else {
			out = append(out, Extent{Object: obj, Offset: objOff, Length: n, BufOff: done})
		}
		done += n
	}
	return out
}

// ToImage returns the image offset that byte objOff of object obj holds
// (the inverse of Map for one byte). objOff must be in [0, ObjectSize).
func ToImage(l Layout, obj uint64, objOff int64) int64 {
	su, sc := l.StripeUnit, l.StripeCount
	spo := l.ObjectSize / su
	set, pos := int64(obj)/sc, int64(obj)%sc
	stripeNo := set*spo + objOff/su
	return (stripeNo*sc+pos)*su + objOff%su
}
