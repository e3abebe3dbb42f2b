package wire

import (
	"bufio"
	"bytes"
	"errors"
	"math/rand/v2"
	"net"
	"reflect"
	"testing"
)

func TestRequestRoundTrip(t *testing.T) {
	for _, r := range []Request{
		{ID: 1, Op: OpWrite, Epoch: 7, Pool: 2, PG: 63, Object: "img.0001", Offset: 4096, Data: []byte("abc")},
		{ID: 1<<63 + 5, Op: OpRead, Object: "", Offset: 1 << 40, Length: 32 << 20, Sent: 1<<32 - 1, Budget: 30000},
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
	sts := []PGState{{Pool: 1, PG: 2, Leader: 3, Term: 4, Commit: 5, Applied: 6, Voters: []int32{0, 1, 2}, Lagging: []int32{}, Learners: []int32{3}}}
	if gs, err := DecodePGStates(AppendPGStates(nil, sts)); err != nil || !reflect.DeepEqual(gs, sts) {
		t.Fatalf("pg states: %+v %v", gs, err)
	}
	msgs := []RaftMsg{{Pool: 1, PG: 2, Compact: 3, Msg: []byte("x")},
		{Pool: 4, Msg: []byte{}, Ents: []RaftEnt{{Term: 5, Index: 6, Type: 2, Data: []byte("entry")}, {Data: []byte{}}}}}
	if from, gm, err := DecodeRaftBatch(AppendRaftBatch(nil, 4, msgs)); err != nil || from != 4 || !reflect.DeepEqual(gm, msgs) {
		t.Fatalf("raft batch: %d %+v %v", from, gm, err)
	}
}

// TestRaftFrameVecMatchesAppend checks the vectored encoding against the
// flat one, for batches mixing small and direct entry data, appended after
// earlier frames (whose buffers must stay intact when scratch grows).
func TestRaftFrameVecMatchesAppend(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var bufs net.Buffers
	var scratch, want []byte
	for round := 0; round < 50; round++ {
		var msgs []RaftMsg
		for range rng.IntN(4) {
			m := RaftMsg{Pool: rng.Uint32(), PG: rng.Uint32(), Compact: rng.Uint64(), Msg: randBytes(rng, rng.IntN(40))}
			for range rng.IntN(4) {
				size := rng.IntN(300)
				if rng.IntN(3) == 0 {
					size = directPayload + rng.IntN(3*directPayload)
				}
				m.Ents = append(m.Ents, RaftEnt{Term: rng.Uint64(), Index: rng.Uint64(), Type: uint8(rng.IntN(3)), Data: randBytes(rng, size)})
			}
			msgs = append(msgs, m)
		}
		from := int32(rng.Uint32())
		bufs, scratch = AppendRaftFrameVec(bufs, scratch, from, msgs)
		want = AppendRaftFrame(want, from, msgs)
		r := bufio.NewReader(bytes.NewReader(want[len(want)-5-RaftBatchSize(msgs):]))
		typ, body, err := ReadFrame(r)
		if err != nil || typ != FrameRaft {
			t.Fatalf("round %d: frame: %v", round, err)
		}
		gf, gm, err := DecodeRaftBatch(body)
		if err != nil || gf != from || len(gm) != len(msgs) {
			t.Fatalf("round %d: decode: %v", round, err)
		}
		for i := range msgs {
			if !bytes.Equal(AppendRaftBatch(nil, 0, gm[i:i+1]), AppendRaftBatch(nil, 0, msgs[i:i+1])) {
				t.Fatalf("round %d: message %d does not round-trip", round, i)
			}
		}
		if rng.IntN(5) == 0 { // written out: the sender reuses its scratch
			if got := bytes.Join(bufs, nil); !bytes.Equal(got, want) {
				t.Fatalf("round %d: vectored frames differ from AppendRaftFrame", round)
			}
			bufs, scratch, want = bufs[:0], scratch[:0], want[:0]
		}
	}
	if got := bytes.Join(bufs, nil); !bytes.Equal(got, want) {
		t.Fatalf("vectored frames differ from AppendRaftFrame")
	}
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
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
	f.Add(AppendRaftBatch(nil, 1, []RaftMsg{{Msg: []byte("m"), Ents: []RaftEnt{{Term: 1, Data: []byte("d")}}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = DecodeList(b)
		_, _ = DecodeDigest(b)
		_, _ = DecodePGStates(b)
		if from, msgs, err := DecodeRaftBatch(b); err == nil && !bytes.Equal(AppendRaftBatch(nil, from, msgs), b) {
			t.Fatalf("decoded raft batch does not re-encode to its input")
		}
	})
}
