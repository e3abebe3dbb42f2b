package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestServeDebugProfiles: --debug-addr serves the CPU profiler's index and
// the mutex and block profiles, which it turns on.
func TestServeDebugProfiles(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	serveDebug(ctx, addr, zap.NewNop())
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/mutex", "/debug/pprof/block"} {
		var resp *http.Response
		var err error
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if resp, err = http.Get("http://" + addr + path); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(body) == 0 {
			t.Fatalf("GET %s: %s, %d bytes", path, resp.Status, len(body))
		}
	}
	if got := runtimeMutexFraction(); got != debugMutexFraction {
		t.Fatalf("mutex profile fraction %d, want %d", got, debugMutexFraction)
	}
}

// runtimeMutexFraction reads the mutex profile fraction without changing it.
func runtimeMutexFraction() int { return runtime.SetMutexProfileFraction(-1) }
