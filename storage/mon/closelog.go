package mon

import (
	"errors"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/soheilhy/cmux"
	"go.uber.org/zap/zapcore"
)

// stopCore drops, once the member is stopping, the warnings and errors
// etcd logs about its own listeners and servers being closed. embed.Etcd's
// Close logs "setting up serving from embedded etcd failed" at error level
// with http.ErrServerClosed, net.ErrClosed or cmux's "server closed" (the
// listener multiplexer etcd serves through) on every clean stop
// (etcd-io/etcd#17424); an operator should not read ERROR lines after a
// stop that went as asked. Before the stop, and for every other entry,
// it passes entries through unchanged.
type stopCore struct {
	zapcore.Core
	stopping *atomic.Bool
}

func (c stopCore) With(fields []zapcore.Field) zapcore.Core {
	return stopCore{c.Core.With(fields), c.stopping}
}

func (c stopCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c stopCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	if c.stopping.Load() && closedBySelf(fields) {
		return nil
	}
	return c.Core.Write(e, fields)
}

// closedBySelf reports whether an entry's error says that a listener or
// server was closed, which is what stopping does.
func closedBySelf(fields []zapcore.Field) bool {
	for _, f := range fields {
		if err, ok := f.Interface.(error); ok && f.Type == zapcore.ErrorType &&
			(errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) ||
				errors.Is(err, cmux.ErrServerClosed) || errors.Is(err, cmux.ErrListenerClosed)) {
			return true
		}
	}
	return false
}
