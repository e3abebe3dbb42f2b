package osd

import (
	"slices"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// The voters of the configuration before the last one applied are kept
// with the configuration, in a field of its record that raft does not
// know (prevVotersField). A leader counts a commit quorum with the
// configuration it has applied, which may be the one before (it learns
// late that a change was committed): an entry committed so may be held by
// a voter the newer configuration no longer lists. The lost-entry proof
// (lost.go) asks those voters too. A replica that installed a snapshot
// does not know the configuration before it until its next change.
const prevVotersField = 1000

// confVoters returns the seats that vote in cs: its voters and, joint,
// its outgoing voters.
func confVoters(cs *pb.ConfState) []uint64 {
	out := slices.Clone(cs.GetVoters())
	for _, id := range cs.GetVotersOutgoing() {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// encodeConf marshals cs with prev, the seats that voted in the
// configuration before it; known false leaves prev out (unknown).
func encodeConf(cs *pb.ConfState, prev []uint64, known bool) []byte {
	b, _ := proto.Marshal(cs)
	if !known {
		return b
	}
	var packed []byte
	for _, id := range prev {
		packed = protowire.AppendVarint(packed, id)
	}
	b = protowire.AppendTag(b, prevVotersField, protowire.BytesType)
	return protowire.AppendBytes(b, packed)
}

// takePrevVoters returns the previous voters stored in cs's unknown
// fields and whether there were any, and removes the unknown fields (raft
// gets cs as it knows it).
func takePrevVoters(cs *pb.ConfState) ([]uint64, bool, error) {
	rest := cs.ProtoReflect().GetUnknown()
	cs.ProtoReflect().SetUnknown(nil)
	var prev []uint64
	known := false
	for len(rest) > 0 {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 {
			return nil, false, protowire.ParseError(n)
		}
		rest = rest[n:]
		if num == prevVotersField && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(rest)
			if m < 0 {
				return nil, false, protowire.ParseError(m)
			}
			rest, known, prev = rest[m:], true, []uint64{}
			for len(v) > 0 {
				id, k := protowire.ConsumeVarint(v)
				if k < 0 {
					return nil, false, protowire.ParseError(k)
				}
				prev, v = append(prev, id), v[k:]
			}
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, rest)
		if m < 0 {
			return nil, false, protowire.ParseError(m)
		}
		rest = rest[m:]
	}
	return prev, known, nil
}
