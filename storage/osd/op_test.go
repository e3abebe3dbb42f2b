package osd

import (
	"bytes"
	"testing"
)

// TestEncodeOpInFrame: an op whose data is the tail of its request frame
// is encoded in the frame, before the data, and decodes to the same op as
// one encoded into a fresh buffer; without room, or when the data is not
// the frame's tail, it is copied as before and the frame is untouched.
func TestEncodeOpInFrame(t *testing.T) {
	data := bytes.Repeat([]byte("payload!"), 1024)
	base := op{Kind: opWrite, ReqID: 42, Object: "rbd_data.1.0000000000000003", Offset: 1 << 20}
	plain := base
	plain.Data = data
	want := encodeOp(&plain)
	h := opHeaderLen(&base)
	for _, tc := range []struct {
		name    string
		room    int  // bytes before the data in the frame
		tail    bool // the data is the frame's tail
		inPlace bool
	}{
		{"room", h + 30, true, true},
		{"exact room", h, true, true},
		{"no room", h - 1, true, false},
		{"not the tail", h + 30, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frame := append(bytes.Repeat([]byte{0xAA}, tc.room), data...)
			if !tc.tail {
				frame = append(frame, 0xBB)
			}
			before := bytes.Clone(frame)
			o := base
			o.Data, o.frame = frame[tc.room:tc.room+len(data)], frame
			got := encodeOp(&o)
			if !bytes.Equal(got, want) {
				t.Fatal("encoding differs from a fresh one")
			}
			aliases := &got[len(got)-1] == &frame[len(frame)-1]
			if aliases != tc.inPlace {
				t.Fatalf("encoded in the frame: %v, want %v", aliases, tc.inPlace)
			}
			if !tc.inPlace && !bytes.Equal(frame, before) {
				t.Fatal("the frame was changed although the op was copied")
			}
			if back, err := decodeOp(got); err != nil || back.Object != base.Object || !bytes.Equal(back.Data, data) {
				t.Fatalf("decode: %v", err)
			}
		})
	}
}
