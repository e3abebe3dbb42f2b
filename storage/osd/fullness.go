package osd

import (
	"context"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// fullCheckEvery is how often an OSD looks at its device's free space.
const fullCheckEvery = 2 * time.Second

// fullReporter is what watchFullness needs from the cluster map store.
type fullReporter interface {
	SetFull(ctx context.Context, id int32, full bool) error
}

// usedRatio is the share of dir's filesystem in use (as df counts it:
// blocks the unprivileged cannot use count as used).
func usedRatio(dir string) (float64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	if st.Blocks == 0 {
		return 0, nil
	}
	return 1 - float64(st.Bavail)/float64(st.Blocks), nil
}

// watchFullness reports OSD id full or not full through rep whenever its
// device crosses ratio, until ctx is done. It reads the wall clock through
// a ticker: when to look is not a decision tests simulate.
func watchFullness(ctx context.Context, dir string, ratio float64, id int32, rep fullReporter, log *zap.Logger) error {
	t := time.NewTicker(fullCheckEvery)
	defer t.Stop()
	reported := false
	for {
		used, err := usedRatio(dir)
		if err != nil {
			log.Warn("cannot read the device's free space", zap.String("dir", dir), zap.Error(err))
		} else if full := used >= ratio; full != reported {
			if err := rep.SetFull(ctx, id, full); err != nil {
				log.Warn("cannot report the device's fullness", zap.Error(err))
			} else {
				reported = full
				if full {
					log.Error("device full: the cluster refuses writes until space is freed or added",
						zap.String("dir", dir), zap.Float64("used", used), zap.Float64("full_ratio", ratio))
				} else {
					log.Info("device no longer full", zap.Float64("used", used))
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
