package wire

import (
	"bytes"
	"reflect"
	"testing"
)

func TestCopyRoundTrip(t *testing.T) {
	req := CopyRequest{Pool: 3, PG: 17, Min: 1 << 40}
	if got, err := DecodeCopyRequest(AppendCopyRequest(nil, req)); err != nil || got != req {
		t.Fatalf("copy request: %+v, %v", got, err)
	}
	obj := CopyObject{Name: "rbd_data.1.0000", Version: 99, Data: []byte("content")}
	if got, err := DecodeCopyObject(AppendCopyObject(nil, obj)); err != nil || !reflect.DeepEqual(got, obj) {
		t.Fatalf("copy object: %+v, %v", got, err)
	}
	empty := CopyObject{Name: "e", Version: 1}
	if got, err := DecodeCopyObject(AppendCopyObject(nil, empty)); err != nil || got.Name != "e" || len(got.Data) != 0 {
		t.Fatalf("empty object: %+v, %v", got, err)
	}
	dmg := CopyObject{Name: "d", Version: 2, Damaged: []CopyRange{{0, 2}, {4, 3}}, Data: []byte("0123456")}
	if got, err := DecodeCopyDamaged(AppendCopyDamaged(nil, dmg)); err != nil || !reflect.DeepEqual(got, dmg) {
		t.Fatalf("damaged object: %+v, %v", got, err)
	}
	for _, r := range [][]CopyRange{nil, {{0, 0}}, {{5, 3}}, {{2, 2}, {1, 1}}, {{1, 2}, {2, 1}}, {{1 << 63, 1 << 63}}} {
		o := dmg
		o.Damaged = r
		if _, err := DecodeCopyDamaged(AppendCopyDamaged(nil, o)); err == nil {
			t.Fatalf("DecodeCopyDamaged took ranges %v of %d bytes", r, len(o.Data))
		}
	}
	end := CopyEnd{Through: 7, Err: "osd: no such pg"}
	if got, err := DecodeCopyEnd(AppendCopyEnd(nil, end)); err != nil || got != end {
		t.Fatalf("copy end: %+v, %v", got, err)
	}
	for _, bad := range [][]byte{nil, {0, 0, 0, 0}, AppendCopyObject(nil, CopyObject{})} {
		if _, err := DecodeCopyObject(bad); err == nil {
			t.Fatalf("DecodeCopyObject(%x) took a malformed object", bad)
		}
	}
}

func FuzzDecodeCopy(f *testing.F) {
	f.Add(AppendCopyRequest(nil, CopyRequest{Pool: 1, PG: 2, Min: 3}))
	f.Add(AppendCopyObject(nil, CopyObject{Name: "o", Version: 4, Data: []byte("d")}))
	f.Add(AppendCopyEnd(nil, CopyEnd{Through: 5, Err: "e"}))
	f.Add(AppendCopyDamaged(nil, CopyObject{Name: "o", Version: 4, Damaged: []CopyRange{{1, 1}}, Data: []byte("dd")}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := DecodeCopyRequest(b); err == nil && !bytes.Equal(AppendCopyRequest(nil, r), b) {
			t.Fatal("decoded copy request does not re-encode to its input")
		}
		if o, err := DecodeCopyObject(b); err == nil && !bytes.Equal(AppendCopyObject(nil, o), b) {
			t.Fatal("decoded copied object does not re-encode to its input")
		}
		if o, err := DecodeCopyDamaged(b); err == nil && !bytes.Equal(AppendCopyDamaged(nil, o), b) {
			t.Fatal("decoded damaged object does not re-encode to its input")
		}
		if c, err := DecodeCopyEnd(b); err == nil && !bytes.Equal(AppendCopyEnd(nil, c), b) {
			t.Fatal("decoded copy end does not re-encode to its input")
		}
	})
}
