package wire

import (
	"bufio"
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestRequestRoundTrip(t *testing.T) {
	for _, r := range []Request{
		{ID: 1, Op: OpWrite, Epoch: 7, Pool: 2, PG: 63, Object: "img.0001", Offset: 4096, Data: []byte("abc")},
		{ID: 1<<63 + 5, Op: OpRead, Object: "", Offset: 1 << 40, Length: 32 << 20},
		{Op: OpReplicaRead, MinIndex: 99, Data: []byte{}},
	} {
		got, err := DecodeRequest(AppendRequest(nil, &r))
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Data) == 0 {
			r.Data = got.Data // nil vs empty
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("round trip: got %+v want %+v", got, r)
		}
	}
}

func TestResponseAndResultsRoundTrip(t *testing.T) {
	r := Response{ID: 9, Status: StatusNotLeader, Epoch: 3, Leader: -1, A: 1, B: 2, Msg: "m", Data: []byte("d")}
	got, err := DecodeResponse(AppendResponse(nil, &r))
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Fatalf("response: %+v %v", got, err)
	}
	ents := []ObjectEntry{{"a", 1, 2}, {"bb", 3, 4}}
	if gl, err := DecodeList(AppendList(nil, ents)); err != nil || !reflect.DeepEqual(gl, ents) {
		t.Fatalf("list: %+v %v", gl, err)
	}
	dg := Digest{Applied: 5, Objects: 6, Sum: [32]byte{1, 2, 3}}
	if gd, err := DecodeDigest(AppendDigest(nil, dg)); err != nil || gd != dg {
		t.Fatalf("digest: %+v %v", gd, err)
	}
	sts := []PGState{{Pool: 1, PG: 2, Leader: 3, Term: 4, Commit: 5, Applied: 6, Voters: []int32{0, 1, 2}, Lagging: []int32{}}}
	if gs, err := DecodePGStates(AppendPGStates(nil, sts)); err != nil || !reflect.DeepEqual(gs, sts) {
		t.Fatalf("pg states: %+v %v", gs, err)
	}
	msgs := []RaftMsg{{Pool: 1, PG: 2, Compact: 3, Msg: []byte("x")}}
	if from, gm, err := DecodeRaftBatch(AppendRaftBatch(nil, 4, msgs)); err != nil || from != 4 || !reflect.DeepEqual(gm, msgs) {
		t.Fatalf("raft batch: %d %+v %v", from, gm, err)
	}
}

func TestWriteRaftBatchMatchesAppend(t *testing.T) {
	msgs := []RaftMsg{{Pool: 1, PG: 2, Compact: 3, Msg: []byte("x")}, {Pool: 4, Msg: bytes.Repeat([]byte("y"), 1000)}}
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	if err := WriteRaftBatch(w, 7, msgs); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	typ, body, err := ReadFrame(bufio.NewReader(&buf))
	if err != nil || typ != FrameRaft || !bytes.Equal(body, AppendRaftBatch(nil, 7, msgs)) {
		t.Fatalf("streamed batch differs from AppendRaftBatch: %v", err)
	}
}

func TestDecodeRejectsTruncatedAndTrailing(t *testing.T) {
	b := AppendRequest(nil, &Request{Op: OpWrite, Object: "o", Data: []byte("data")})
	for i := 0; i < len(b); i++ {
		if _, err := DecodeRequest(b[:i]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("truncated at %d: %v", i, err)
		}
	}
	if _, err := DecodeRequest(append(b, 0)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("trailing byte accepted")
	}
}

func TestFrameLimit(t *testing.T) {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	if err := WriteFrame(w, FrameRequest, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	typ, body, err := ReadFrame(bufio.NewReader(&buf))
	if err != nil || typ != FrameRequest || string(body) != "hello" {
		t.Fatalf("frame: %d %q %v", typ, body, err)
	}
	huge := []byte{0xff, 0xff, 0xff, 0xff, FrameRequest}
	if _, _, err := ReadFrame(bufio.NewReader(bytes.NewReader(huge))); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("huge frame: %v", err)
	}
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add(AppendRequest(nil, &Request{Op: OpWrite, Object: "o", Data: []byte("x")}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRequest(b)
		if err == nil && !bytes.Equal(AppendRequest(nil, &r), b) {
			t.Fatalf("decoded request does not re-encode to its input")
		}
	})
}

func FuzzDecodeResponse(f *testing.F) {
	f.Add(AppendResponse(nil, &Response{Status: StatusOK, Data: []byte("x")}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeResponse(b)
		if err == nil && !bytes.Equal(AppendResponse(nil, &r), b) {
			t.Fatalf("decoded response does not re-encode to its input")
		}
	})
}

func FuzzDecodeResults(f *testing.F) {
	f.Add(AppendList(nil, []ObjectEntry{{"a", 1, 2}}))
	f.Add(AppendPGStates(nil, []PGState{{Voters: []int32{1}}}))
	f.Add(AppendRaftBatch(nil, 1, []RaftMsg{{Msg: []byte("m")}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = DecodeList(b)
		_, _ = DecodeDigest(b)
		_, _ = DecodePGStates(b)
		_, _, _ = DecodeRaftBatch(b)
	})
}
