package clustermap

import (
	"context"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

const (
	// dialTimeout bounds the client's connection setup.
	dialTimeout = 5 * time.Second
	// probeTimeout bounds the first request that proves etcd answers. The
	// client connects lazily, so without it a dead endpoint shows up only
	// as the first real request hanging.
	probeTimeout = 5 * time.Second
	// probeKey is read (not written) by the probe; it need not exist.
	probeKey = "health"
	// maxReconnectDelay caps gRPC's reconnect backoff (default: up to two
	// minutes), so daemons notice within seconds that a control plane
	// that was down for long is back, before their liveness leases lapse.
	maxReconnectDelay = 2 * time.Second
)

// Dial connects to the etcd endpoints (e.g. "http://127.0.0.1:2379") and
// checks within about 5 seconds that the control plane answers a
// linearizable read, so commands fail fast instead of hanging. The caller
// closes the client. log may be nil.
//
// Errors wrap ErrInvalid (no endpoints) or ErrUnreachable, whose message
// tells the operator how to start or point at a control plane; if ctx ends
// first, the error wraps ctx's error.
func Dial(ctx context.Context, endpoints []string, log *zap.Logger) (*clientv3.Client, error) {
	eps := strings.Join(endpoints, ",")
	if len(endpoints) == 0 {
		return nil, errorf(ErrInvalid, "dial control plane", "no etcd endpoints: start `tsumiki mon` or pass --etcd-endpoints / TSUMIKI_ETCD_ENDPOINTS")
	}
	if log == nil {
		log = zap.NewNop()
	}
	clog := log.Named("etcd-client")
	// The client retries and logs every failed attempt at warn; Dial and
	// the callers report what matters, so only its errors get through.
	if clog.Core().Enabled(zapcore.WarnLevel) {
		clog = clog.WithOptions(zap.IncreaseLevel(zapcore.ErrorLevel))
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		DialTimeout:          dialTimeout,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		Logger:               clog,
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 200 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: maxReconnectDelay},
			MinConnectTimeout: dialTimeout,
		})},
	})
	if err != nil {
		return nil, fmt.Errorf("%w at %s: %w; start `tsumiki mon` or pass --etcd-endpoints / TSUMIKI_ETCD_ENDPOINTS", ErrUnreachable, eps, err)
	}
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	if _, err := cli.Get(pctx, probeKey); err != nil {
		cli.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("clustermap: dial control plane at %s: %w", eps, ctx.Err())
		}
		return nil, fmt.Errorf("%w at %s: start `tsumiki mon` or pass --etcd-endpoints / TSUMIKI_ETCD_ENDPOINTS (no answer within %v: %w)", ErrUnreachable, eps, probeTimeout, err)
	}
	return cli, nil
}
