package mon

import (
	"sync/atomic"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// etcdConfig turns a validated Config into etcd's embed.Config. Once
// stopping is set, etcd's complaints about its own closed listeners are
// dropped (stopCore).
func (c Config) etcdConfig(stopping *atomic.Bool) (*embed.Config, error) {
	ec := embed.NewConfig()
	ec.Name = c.Name
	ec.Dir = c.DataDir
	var err error
	if ec.ListenClientUrls, err = parseURLs(c.ListenClient); err != nil {
		return nil, err
	}
	if ec.ListenPeerUrls, err = parseURLs(c.ListenPeer); err != nil {
		return nil, err
	}
	if ec.AdvertiseClientUrls, err = parseURLs(c.AdvertiseClient); err != nil {
		return nil, err
	}
	if ec.AdvertisePeerUrls, err = parseURLs(c.AdvertisePeer); err != nil {
		return nil, err
	}
	ec.InitialCluster = c.InitialCluster
	ec.InitialClusterToken = defaultClusterToken
	ec.ClusterState = c.ClusterState

	// History: the cluster map is rewritten on every change and leases come
	// and go, so keep a bounded window of revisions (watchers that fall
	// further behind re-load) and a fixed backend quota.
	ec.AutoCompactionMode = embed.CompactorModeRevision
	ec.AutoCompactionRetention = defaultCompactRevision
	ec.QuotaBackendBytes = defaultQuotaBytes

	ec.LogLevel = "warn"
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(etcdLogger(c.Logger, c.Name, stopping))
	return ec, nil
}

// etcdLogger returns log restricted to warn and above, so etcd's chatty
// info log does not flood the daemon's. A logger that is already stricter is
// kept as is (zap refuses to lower a level).
func etcdLogger(log *zap.Logger, name string, stopping *atomic.Bool) *zap.Logger {
	l := log.Named("etcd").With(zap.String("member", name))
	l = l.WithOptions(zap.WrapCore(func(core zapcore.Core) zapcore.Core { return stopCore{core, stopping} }))
	if l.Core().Enabled(zapcore.InfoLevel) {
		l = l.WithOptions(zap.IncreaseLevel(zapcore.WarnLevel))
	}
	return l
}
