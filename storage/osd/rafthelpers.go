package osd

import (
	"fmt"

	"go.uber.org/zap"
)

// Raft member ids are seats (move.go): the low seatBits bits are the
// OSD's id + 1, the bits above a generation. A PG's first members sit at
// generation 0, so their ids are the OSD ids + 1 (raftID). A replica a
// move adds gets a generation of its own, so that an OSD that dropped its
// copy and is given the PG again never answers for the seat its dropped
// copy held.
const seatBits = 20

// MaxOSDID is the highest OSD id a seat can name.
const MaxOSDID = 1<<seatBits - 2

// unseatedGen is the generation of the id a replica runs raft under
// while it has no seat (it joins, or left): no seat ever has it, so no
// message is addressed to it.
const unseatedGen = 1<<(64-seatBits) - 1

// seatID is the raft id of osd's seat of generation gen.
func seatID(gen uint64, osd int32) uint64 { return gen<<seatBits | (uint64(osd) + 1) }

// raftID is osd's seat of generation 0; osdID and seatGen split a seat.
func raftID(osd int32) uint64    { return seatID(0, osd) }
func osdID(seat uint64) int32    { return int32(seat&(1<<seatBits-1)) - 1 }
func seatGen(seat uint64) uint64 { return seat >> seatBits }

// raftLogger adapts zap to raft.Logger. raft's chatty Info level is demoted
// to Debug; a PG election is not news worth a line per PG.
type raftLogger struct{ s *zap.SugaredLogger }

func (l raftLogger) Debug(v ...any)              { l.s.Debug(v...) }
func (l raftLogger) Debugf(f string, v ...any)   { l.s.Debugf(f, v...) }
func (l raftLogger) Info(v ...any)               { l.s.Debug(v...) }
func (l raftLogger) Infof(f string, v ...any)    { l.s.Debugf(f, v...) }
func (l raftLogger) Warning(v ...any)            { l.s.Warn(v...) }
func (l raftLogger) Warningf(f string, v ...any) { l.s.Warnf(f, v...) }
func (l raftLogger) Error(v ...any)              { l.s.Error(v...) }
func (l raftLogger) Errorf(f string, v ...any)   { l.s.Errorf(f, v...) }
func (l raftLogger) Fatal(v ...any)              { panic(fmt.Sprint(v...)) }
func (l raftLogger) Fatalf(f string, v ...any)   { panic(fmt.Sprintf(f, v...)) }
func (l raftLogger) Panic(v ...any)              { panic(fmt.Sprint(v...)) }
func (l raftLogger) Panicf(f string, v ...any)   { panic(fmt.Sprintf(f, v...)) }
