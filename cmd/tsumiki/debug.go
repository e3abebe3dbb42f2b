package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"time"

	"go.uber.org/zap"
)

// serveDebug serves Go's profiler on addr (e.g. 127.0.0.1:6060) until ctx
// is done. Empty addr: nothing. Metrics will join it in a later release.
//
// It also turns on the mutex and block profiles (/debug/pprof/mutex and
// /block, sampled: see debugMutexFraction and debugBlockRate), which are
// off by default in Go: diffed over a window (`go tool pprof -base`), they
// found the lock stall behind 15 % of the OSD loops' time under a
// sequential write (docs/design-big-writes.md, eleventh session). Their
// cost is paid only by a process started with --debug-addr.
func serveDebug(ctx context.Context, addr string, log *zap.Logger) {
	if addr == "" {
		return
	}
	runtime.SetMutexProfileFraction(debugMutexFraction)
	runtime.SetBlockProfileRate(debugBlockRate)
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		log.Warn("debug listener not started", zap.String("addr", addr), zap.Error(err))
		return
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("debug listener failed", zap.Error(err))
		}
	}()
	context.AfterFunc(ctx, func() { _ = srv.Close() })
	log.Info("debug endpoints", zap.String("pprof", "http://"+l.Addr().String()+"/debug/pprof/"))
}

// The sampling of the mutex profile (one contention event in
// debugMutexFraction) and of the block profile (about one event per
// debugBlockRate nanoseconds spent blocked).
const (
	debugMutexFraction = 5
	debugBlockRate     = 100_000
)
