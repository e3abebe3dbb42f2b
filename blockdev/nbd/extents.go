package nbd

import "fmt"

// descriptor is one block status descriptor of base:allocation.
type descriptor struct {
	length uint32
	flags  uint32
}

// maxDescriptors bounds one BLOCK_STATUS reply (8 bytes each); the spec
// lets the server describe less than was asked.
const maxDescriptors = 1 << 16

// descriptors turns the Export's allocation map of [off, off+length) into
// wire descriptors: clipped to the range, merged when consecutive extents
// have the same flags, at most one with reqOne, at most maxDescriptors,
// and shortened at the first inner boundary that is not a multiple of
// align (off is a multiple of align). The answer may cover less than the
// range but always covers at least one byte; an allocation map that does
// not start at off or has no extent there is ErrBadExtents.
func descriptors(ext []Extent, off, length int64, reqOne bool, align int64) ([]descriptor, error) {
	end := off + length
	pos := off
	var out []descriptor
	for _, e := range ext {
		if pos == end {
			break
		}
		eEnd := e.Offset + e.Length
		if e.Length <= 0 || eEnd < e.Offset {
			return nil, fmt.Errorf("%w: extent [%d, +%d)", ErrBadExtents, e.Offset, e.Length)
		}
		if eEnd <= pos {
			continue // already described
		}
		if e.Offset > pos {
			break // a gap: describe what came before it
		}
		n := min(eEnd, end) - pos
		flags := uint32(e.Flags) & (stateHole | stateZero)
		if k := len(out); k > 0 && out[k-1].flags == flags && uint64(out[k-1].length)+uint64(n) <= 1<<32-1 {
			out[k-1].length += uint32(n)
		} else {
			out = append(out, descriptor{length: uint32(n), flags: flags})
		}
		pos += n
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: nothing describes offset %d", ErrBadExtents, off)
	}
	out = alignDescriptors(out, off, end, align)
	if reqOne {
		out = out[:1]
	}
	if len(out) > maxDescriptors {
		out = out[:maxDescriptors]
	}
	return out, nil
}

// alignDescriptors cuts the list at the first descriptor that ends on a
// boundary that is not a multiple of align and is not the end of the
// request, keeping that descriptor's aligned part. When the first
// descriptor has no aligned part it becomes one descriptor up to the next
// multiple of align (clipped to end) with status 0, which is always a safe
// answer ("allocated, contents unknown").
func alignDescriptors(ds []descriptor, off, end, align int64) []descriptor {
	if align <= 1 {
		return ds
	}
	pos := off
	for i, d := range ds {
		dEnd := pos + int64(d.length)
		if dEnd == end || dEnd%align == 0 {
			pos = dEnd
			continue
		}
		if down := dEnd - dEnd%align; down > pos {
			return append(ds[:i:i], descriptor{length: uint32(down - pos), flags: d.flags})
		}
		if i > 0 {
			return ds[:i]
		}
		up := min(dEnd-dEnd%align+align, end)
		return []descriptor{{length: uint32(up - pos), flags: 0}}
	}
	return ds
}
