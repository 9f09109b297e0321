package aggregator

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/fabrictelemetry/aggregator/history"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// historyDir is where a source's PromQL history is kept.
func (a *Aggregator) historyDir(src *source) string {
	return filepath.Join(a.cfg.StoragePath, "history", src.cfg.Name)
}

// openHistories loads each source's PromQL history kept under the storage
// path, and keeps writing the runs it seals there (see history.Persist).
// It runs before restore, whose snapshot is appended after what it loads,
// and before the first poll. The returned func stops the writers once
// they have written what the histories sealed, after the last poll. A
// directory that cannot be used costs the source its kept history, never
// its polling.
func (a *Aggregator) openHistories() (closeAll func()) {
	if a.cfg.StoragePath == "" {
		return func() {}
	}
	var disks []*history.Disk
	for _, src := range a.sources {
		d, err := src.history.Persist(a.historyDir(src))
		if err != nil {
			a.cfg.Logger.Error("History directory unusable; the source's PromQL history will not be kept", "source_name", src.cfg.Name,
				"path", a.historyDir(src), "err", err)
			continue
		}
		disks = append(disks, d)
	}
	return func() {
		for _, d := range disks {
			_ = d.Close()
		}
	}
}

// stateFile is where a source's last good snapshot is kept.
func (a *Aggregator) stateFile(src *source) string {
	return filepath.Join(a.cfg.StoragePath, src.cfg.Name+".snapshot")
}

// persist writes the source's snapshot after it was swapped in, so a
// restart serves it again. The write is atomic (temp file, fsync, rename);
// a failure is logged and costs nothing but the next restart's warm start.
func (a *Aggregator) persist(src *source, s *snapshot.Snapshot) {
	if a.cfg.StoragePath == "" {
		return
	}
	if err := snapshot.WriteFile(a.stateFile(src), s); err != nil {
		a.cfg.Logger.Error("Writing state file failed", "source_name", src.cfg.Name, "err", err)
	}
}

// restore publishes every source's state file, with the time it was
// polled at, before the first poll: a restart loses nothing, and /-/ready
// still reflects how fresh that data really is. A missing file is a cold
// start; a corrupt or truncated one is reported and ignored.
func (a *Aggregator) restore() {
	if a.cfg.StoragePath == "" {
		return
	}
	if err := os.MkdirAll(a.cfg.StoragePath, 0o755); err != nil {
		a.cfg.Logger.Error("Storage directory unusable; state will not be kept", "path", a.cfg.StoragePath, "err", err)
		return
	}
	for _, src := range a.sources {
		path := a.stateFile(src)
		s, err := snapshot.ReadFile(path, a.cfg.Schema)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			a.cfg.Logger.Error("Ignoring unreadable state file", "source_name", src.cfg.Name, "path", path, "err", err)
			continue
		}
		a.cfg.Logger.Info("Restored last good snapshot", "source_name", src.cfg.Name, "path", path,
			"time", s.Time(), "rows", s.NumRows())
		a.publishPart(src, s)
	}
}
