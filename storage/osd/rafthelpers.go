package osd

import (
	"fmt"

	"go.uber.org/zap"
)

// raftID and osdID convert between OSD ids (>= 0) and raft member ids (> 0).
func raftID(osd int32) uint64 { return uint64(osd) + 1 }
func osdID(raft uint64) int32 { return int32(raft) - 1 }

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
