package osd

import (
	"bytes"
	"fmt"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/tsumiki-storage/tsumiki/storage/wire"
)

// encodeRaftMsg encodes m for the transport: the message without its
// entries as protobuf, the entries beside it. It leaves m as it was.
func encodeRaftMsg(m *pb.Message) (wire.RaftMsg, error) {
	ents := m.Entries
	m.Entries = nil
	raw, err := proto.Marshal(m)
	m.Entries = ents
	if err != nil {
		return wire.RaftMsg{}, err
	}
	wm := wire.RaftMsg{Msg: raw}
	if len(ents) > 0 {
		wm.Ents = make([]wire.RaftEnt, len(ents))
		for i, e := range ents {
			wm.Ents[i] = wire.RaftEnt{Term: e.GetTerm(), Index: e.GetIndex(), Type: uint8(e.GetType()), Data: e.GetData()}
		}
	}
	return wm, nil
}

// decodeRaftMsg is the inverse of encodeRaftMsg. The entries' data alias
// wm's. A message that carries entries both ways is refused.
func decodeRaftMsg(wm *wire.RaftMsg) (*pb.Message, error) {
	m := &pb.Message{}
	if err := proto.Unmarshal(wm.Msg, m); err != nil {
		return nil, err
	}
	if len(wm.Ents) == 0 {
		return m, nil
	}
	if len(m.Entries) > 0 {
		return nil, fmt.Errorf("%w: raft message with entries inside and beside it", ErrBadEntry)
	}
	m.Entries = make([]*pb.Entry, len(wm.Ents))
	for i, x := range wm.Ents {
		data := x.Data
		if len(data) < aliasMinBytes {
			data = bytes.Clone(data)
		}
		m.Entries[i] = &pb.Entry{Term: new(x.Term), Index: new(x.Index), Type: new(pb.EntryType(x.Type)), Data: data}
	}
	return m, nil
}

// aliasMinBytes is the smallest entry decodeRaftMsg leaves as a slice of
// the received frame. A smaller one is copied: a PG's log cache can keep
// its last small entries for long (an idle PG), and each would keep a
// whole frame of other PGs' data alive. A large entry is released once
// applied (raftLog.trimTail), as are the others of its frame, which were
// in flight together.
const aliasMinBytes = 64 << 10
