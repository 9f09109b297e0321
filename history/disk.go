package history

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Disk keeps a history's sealed runs in a directory, so that a restarted
// process has its history back (see Persist). Only encoded runs are kept:
// they never change once sealed, so each is written once, whole, and later
// only deleted (or cut, after a rewind). The head, the newest blocks not yet
// in a sealed run, is lost with the process: at most RunBlocks + Spread - 1
// snapshots (see DefaultCompression), plus a run still being written.
//
// The writing is done by a goroutine of the Disk's own, never by Append:
// each Append hands it the view it published (a pointer, without waiting),
// and the goroutine brings the directory in line with the newest view it
// was handed: it writes the runs the view has and the directory lacks,
// deletes the runs the view no longer has (retention, the series budget, a
// rewind past them), and writes a cut file for a run whose newest blocks a
// rewind dropped. A disk slower than the polls delays the files, never an
// Append; the views in between are skipped, and a run that leaves the
// history before its turn is never written (counted as Unwritten).
type Disk struct {
	dir    string
	logger *slog.Logger
	now    func() time.Time

	newest atomic.Pointer[View] // the view to write next
	synced atomic.Pointer[View] // the view last written, for tests
	wake   chan struct{}        // a view was handed over
	stop   chan struct{}        // Close was called
	done   chan struct{}        // the goroutine is done
	once   sync.Once

	loadedSnapshots, loadedRuns int
	unreadable                  atomic.Uint64
	runsWritten, bytesWritten   atomic.Uint64
	failures, unwritten         atomic.Uint64
	sealedThrough               atomic.Int64 // ms; 0: no run

	// The goroutine's, and Persist's before it starts.
	seq     uint64 // the next file's
	runs    map[*encoded]*diskRun
	layouts map[*layout]*diskLayout
	// seen are the runs of a view not written yet, and their layouts.
	seen map[*encoded]*layout
	// retryAt holds back writes after one failed.
	retryAt    time.Time
	failLogged time.Time
	failQuiet  int // failures not logged since failLogged
}

// diskRun is a run file.
type diskRun struct {
	seq    uint64
	layout *diskLayout
	// through is the newest time a load would keep of the run: its newest
	// block's, or its cut's.
	through int64
}

// diskLayout is a layout file.
type diskLayout struct {
	seq  uint64
	lay  *layout
	runs int // run files that name it
}

// diskRetry is how long a Disk waits to write runs again after a write
// failed (a full disk, say), and the least time between two log lines
// about failures.
const diskRetry = time.Minute

// DiskStats is what a Disk has done since Persist.
type DiskStats struct {
	// LoadedSnapshots and LoadedRuns are what Persist loaded.
	LoadedSnapshots, LoadedRuns int
	// Unreadable counts the files Persist skipped: corrupt, truncated, of
	// an unknown format version, or a run whose layout is unreadable. They
	// are reported, left in place and never loaded.
	Unreadable uint64
	// RunsWritten and BytesWritten count the run files written, and the
	// bytes of every file written.
	RunsWritten, BytesWritten uint64
	// Failures counts the writes and deletions that failed; each is logged
	// (at most a line a minute) and tried again.
	Failures uint64
	// Unwritten counts the sealed runs that left the history before they
	// could be written.
	Unwritten uint64
	// SealedThrough is the newest snapshot time the directory holds, which
	// a restart would load the history up to; zero when it holds none.
	SealedThrough time.Time
}

// Stats returns what d has done. Any goroutine may call it.
func (d *Disk) Stats() DiskStats {
	st := DiskStats{
		LoadedSnapshots: d.loadedSnapshots, LoadedRuns: d.loadedRuns,
		Unreadable: d.unreadable.Load(), RunsWritten: d.runsWritten.Load(), BytesWritten: d.bytesWritten.Load(),
		Failures: d.failures.Load(), Unwritten: d.unwritten.Load(),
	}
	if ms := d.sealedThrough.Load(); ms != 0 {
		st.SealedThrough = msTime(ms)
	}
	return st
}

// Disk returns the Disk that keeps h (see Persist), or nil. Any goroutine
// may call it.
func (h *History) Disk() *Disk { return h.disk.Load() }

// Persist keeps h in dir (made if missing): it loads the sealed runs kept
// there into h, which must be empty, then starts the goroutine that writes
// the runs h seals from then on (see Disk), until Close. It must be called
// before the first Append, by the goroutine that will append.
//
// The loaded history is the runs' blocks, in the order they were written,
// as Append would have kept them: a run that starts at or before the
// newest block loaded so far was written after a rewind, and drops the
// blocks from its time on; then the blocks older than the retention,
// counted back from the newest, are dropped, and the files no block is
// left of are deleted. A file that cannot be read whole is reported,
// counted (Unreadable) and skipped, never half loaded; only a directory
// that cannot be made or listed is an error.
func (h *History) Persist(dir string) (*Disk, error) {
	if h.Load().Len() > 0 || h.disk.Load() != nil {
		return nil, errors.New("history: Persist on a history already in use")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("history directory: %w", err)
	}
	d := &Disk{
		dir: dir, logger: h.drops.logger, now: h.drops.now,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		runs: map[*encoded]*diskRun{}, layouts: map[*layout]*diskLayout{}, seen: map[*encoded]*layout{},
	}
	if d.logger == nil {
		d.logger = slog.New(slog.DiscardHandler)
	}
	start := d.now()
	blocks, err := d.load(h.retention)
	if err != nil {
		return nil, err
	}
	h.loaded(blocks)
	d.updateSealed()
	if len(blocks) > 0 {
		d.logger.Info("Loaded the history kept on disk", "path", dir, "snapshots", len(blocks), "runs", d.loadedRuns,
			"from", msTime(blocks[0].t), "through", msTime(blocks[len(blocks)-1].t), "took", d.now().Sub(start))
	}
	h.disk.Store(d)
	go d.run()
	return d, nil
}

// loaded makes blocks, loaded from disk, the history, and sets the encoder
// to go on after them.
func (h *History) loaded(blocks []*block) {
	if len(blocks) == 0 {
		return
	}
	newest := blocks[len(blocks)-1]
	h.view.Store(&View{blocks: blocks, metrics: newest.lay.metrics})
	h.cutFrom = newest.t + 1
	if cells := newest.enc.cells * newest.lay.numSeries(); cells > 0 {
		h.cellBytes = float64(len(newest.enc.data)) / float64(cells)
	}
}

// Close stops d once it has written the newest view it was handed, so that
// an orderly stop loses no sealed run. Appends after it are not written.
func (d *Disk) Close() error {
	d.once.Do(func() { close(d.stop) })
	<-d.done
	return nil
}

// notify hands the writer v, without waiting.
func (d *Disk) notify(v *View) {
	d.newest.Store(v)
	select {
	case d.wake <- struct{}{}:
	default: // the writer has not taken the last one yet: it will see v
	}
}

func (d *Disk) run() {
	defer close(d.done)
	for {
		select {
		case <-d.wake:
			d.sync(d.newest.Load())
		case <-d.stop:
			d.sync(d.newest.Load())
			return
		}
	}
}

func (d *Disk) path(seq uint64, ext string) string { return filepath.Join(d.dir, fileName(seq, ext)) }

// viewRun is a run and its blocks in a view.
type viewRun struct {
	r      *encoded
	blocks []*block
}

func (vr viewRun) newest() int64 { return vr.blocks[len(vr.blocks)-1].t }

// viewRuns returns the runs of v, oldest first; a run's blocks are
// consecutive.
func viewRuns(v *View) []viewRun {
	var runs []viewRun
	for i := 0; i < len(v.blocks); {
		r := v.blocks[i].enc
		j := i + 1
		for j < len(v.blocks) && r != nil && v.blocks[j].enc == r {
			j++
		}
		if r != nil {
			runs = append(runs, viewRun{r, v.blocks[i:j]})
		}
		i = j
	}
	return runs
}

// sync brings the directory in line with v: deletions and cuts first, so
// that a crash between them and a new run leaves nothing a load would
// resurrect (and a load applies the rewind rule anyway), then new runs,
// oldest first, then an fsync of the directory.
func (d *Disk) sync(v *View) {
	if v == nil {
		return
	}
	runs := viewRuns(v)
	inView := make(map[*encoded]bool, len(runs))
	for _, vr := range runs {
		inView[vr.r] = true
	}
	changed := false
	for r, dr := range d.runs {
		if !inView[r] {
			changed = d.remove(r, dr) || changed
		}
	}
	for r := range d.seen {
		if !inView[r] {
			delete(d.seen, r)
			d.unwritten.Add(1)
		}
	}
	for _, vr := range runs {
		if dr := d.runs[vr.r]; dr != nil && vr.newest() < dr.through {
			changed = d.cut(dr, vr.newest()) || changed
		}
	}
	for _, vr := range runs {
		if d.runs[vr.r] != nil {
			continue
		}
		d.seen[vr.r] = vr.blocks[0].lay
		if d.now().Before(d.retryAt) {
			continue
		}
		if err := d.write(vr); err != nil {
			d.failed("Writing a history run failed; it is tried again", err, "retry_in", diskRetry)
			d.retryAt = d.now().Add(diskRetry)
			continue
		}
		delete(d.seen, vr.r)
		changed = true
	}
	changed = d.dropUnusedLayouts(inView) || changed
	if changed {
		d.syncDir()
	}
	d.updateSealed()
	d.synced.Store(v)
}

// write writes a run's file, and its layout's first if it has none.
func (d *Disk) write(vr viewRun) error {
	lay := vr.blocks[0].lay
	dl := d.layouts[lay]
	if dl == nil {
		seq := d.next()
		n, err := writeFile(d.path(seq, extLayout), kindLayoutFile, encodeLayout(lay))
		if err != nil {
			return err
		}
		d.bytesWritten.Add(uint64(n))
		dl = &diskLayout{seq: seq, lay: lay}
		d.layouts[lay] = dl
	}
	seq := d.next()
	n, err := writeFile(d.path(seq, extRun), kindRunFile, encodeRunHead(dl.seq, vr.r, vr.blocks), vr.r.data)
	if err != nil {
		return err
	}
	d.bytesWritten.Add(uint64(n))
	d.runsWritten.Add(1)
	dl.runs++
	d.runs[vr.r] = &diskRun{seq: seq, layout: dl, through: vr.newest()}
	return nil
}

func (d *Disk) next() uint64 {
	d.seq++
	return d.seq - 1
}

// cut records that run dr keeps its blocks through t only.
func (d *Disk) cut(dr *diskRun, t int64) bool {
	n, err := writeFile(d.path(dr.seq, extCut), kindCutFile, encodeCut(dr.seq, t))
	if err != nil {
		d.failed("Cutting a history run failed; it is tried again", err, "run", dr.seq)
		return false
	}
	d.bytesWritten.Add(uint64(n))
	dr.through = t
	return true
}

// remove deletes a run's files (the run's first, so that a crash between
// the two leaves a cut of nothing, never a run without its cut).
func (d *Disk) remove(r *encoded, dr *diskRun) bool {
	for _, ext := range []string{extRun, extCut} {
		if err := os.Remove(d.path(dr.seq, ext)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			d.failed("Deleting a history run failed; it is tried again", err, "run", dr.seq)
			return false
		}
	}
	delete(d.runs, r)
	dr.layout.runs--
	return true
}

// dropUnusedLayouts deletes the layout files no run file names, unless a
// run of the view waiting to be written needs them.
func (d *Disk) dropUnusedLayouts(inView map[*encoded]bool) bool {
	waiting := map[*layout]bool{}
	for r, lay := range d.seen {
		if inView[r] {
			waiting[lay] = true
		}
	}
	changed := false
	for lay, dl := range d.layouts {
		if dl.runs > 0 || waiting[lay] {
			continue
		}
		if err := os.Remove(d.path(dl.seq, extLayout)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			d.failed("Deleting a history layout failed; it is tried again", err, "layout", dl.seq)
			continue
		}
		delete(d.layouts, lay)
		changed = true
	}
	return changed
}

func (d *Disk) syncDir() {
	f, err := os.Open(d.dir)
	if err == nil {
		err = f.Sync()
		f.Close()
	}
	if err != nil {
		d.failed("Syncing the history directory failed", err)
	}
}

// updateSealed sets SealedThrough from the run files.
func (d *Disk) updateSealed() {
	var newest int64
	for _, dr := range d.runs {
		newest = max(newest, dr.through)
	}
	d.sealedThrough.Store(newest)
}

// failed counts a failure and logs it: the first at once, then at most a
// line every diskRetry, saying how many were not logged.
func (d *Disk) failed(msg string, err error, attrs ...any) {
	d.failures.Add(1)
	if now := d.now(); d.failLogged.IsZero() || now.Sub(d.failLogged) >= diskRetry {
		d.logger.Error(msg, append(attrs, "path", d.dir, "err", err, "failures_not_logged", d.failQuiet)...)
		d.failLogged, d.failQuiet = now, 0
		return
	}
	d.failQuiet++
}

// report counts and logs a file that cannot be loaded.
func (d *Disk) report(name string, err error) {
	d.unreadable.Add(1)
	d.logger.Error("Skipping unreadable history file", "path", filepath.Join(d.dir, name), "err", err)
}

// loadedRun is a run file as load reads it.
type loadedRun struct {
	seq     uint64
	layout  uint64
	blocks  []*block
	through int64
}

// load reads the directory's runs into blocks (see Persist), deletes the
// files of runs it keeps no block of, of layouts no run names and of
// temporary files a crash left, and sets the writer's state to the files
// kept.
func (d *Disk) load(retention int64) ([]*block, error) {
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return nil, fmt.Errorf("reading the history directory: %w", err)
	}
	files := map[string]map[uint64]bool{extLayout: {}, extRun: {}, extCut: {}}
	for _, e := range entries {
		name := e.Name()
		if i := strings.Index(name, ".tmp"); i > 0 {
			if _, _, ok := parseFileName(name[:i]); ok {
				_ = os.Remove(filepath.Join(d.dir, name)) // a write a crash interrupted
			}
			continue
		}
		seq, ext, ok := parseFileName(name)
		if !ok || !e.Type().IsRegular() {
			continue // not the history's
		}
		files[ext][seq] = true
		d.seq = max(d.seq, seq+1)
	}
	cuts := d.loadCuts(files[extCut])
	layouts := map[uint64]*layout{}
	badLayouts := map[uint64]error{}
	var runs []*loadedRun
	for _, seq := range slices.Sorted(maps.Keys(files[extRun])) {
		lr, err := d.loadRun(seq, cuts, layouts, badLayouts)
		if err != nil {
			d.report(fileName(seq, extRun), err)
			continue
		}
		runs = append(runs, lr)
	}
	blocks := keptBlocks(runs, retention)
	kept := map[*encoded]bool{}
	for _, b := range blocks {
		kept[b.enc] = true
	}
	for _, lr := range runs {
		if len(lr.blocks) > 0 && kept[lr.blocks[0].enc] {
			d.keep(lr)
			continue
		}
		d.removeFiles(lr.seq, extRun, extCut)
	}
	for seq := range files[extCut] {
		if !files[extRun][seq] {
			d.removeFiles(seq, extCut)
		}
	}
	for seq := range files[extLayout] {
		if lay := layouts[seq]; lay == nil || d.layouts[lay] == nil {
			if badLayouts[seq] == nil {
				d.removeFiles(seq, extLayout)
			}
		}
	}
	d.loadedSnapshots = len(blocks)
	return blocks, nil
}

// loadCuts reads the cut files: the newest time kept, by run.
func (d *Disk) loadCuts(seqs map[uint64]bool) map[uint64]int64 {
	cuts := map[uint64]int64{}
	for seq := range seqs {
		payload, err := readFile(d.path(seq, extCut), kindCutFile)
		var run uint64
		var through int64
		if err == nil {
			run, through, err = decodeCut(payload)
		}
		if err == nil && run != seq {
			err = fmt.Errorf("the cut of run %d in the file of run %d", run, seq)
		}
		if err != nil {
			d.report(fileName(seq, extCut), err)
			continue
		}
		cuts[seq] = through
	}
	return cuts
}

// loadRun reads run seq and its layout, and returns its blocks through its
// cut.
func (d *Disk) loadRun(seq uint64, cuts map[uint64]int64, layouts map[uint64]*layout, bad map[uint64]error) (*loadedRun, error) {
	payload, err := readFile(d.path(seq, extRun), kindRunFile)
	if err != nil {
		return nil, err
	}
	f, err := decodeRun(payload)
	if err != nil {
		return nil, err
	}
	lay := layouts[f.layout]
	if lay == nil && bad[f.layout] == nil {
		payload, err := readFile(d.path(f.layout, extLayout), kindLayoutFile)
		if err == nil {
			lay, err = decodeLayout(payload)
		}
		if err != nil {
			bad[f.layout] = err
			if !errors.Is(err, fs.ErrNotExist) {
				d.report(fileName(f.layout, extLayout), err)
			}
		}
		layouts[f.layout] = lay
	}
	if err := bad[f.layout]; err != nil {
		return nil, fmt.Errorf("its layout %d: %w", f.layout, err)
	}
	if f.series != lay.numSeries() {
		return nil, fmt.Errorf("%d series where its layout %d has %d", f.series, f.layout, lay.numSeries())
	}
	offs, err := seriesOffsets(f.data, f.series)
	if err != nil {
		return nil, err
	}
	r := &encoded{cells: f.cells, data: f.data, offs: offs}
	lr := &loadedRun{seq: seq, layout: f.layout, through: f.times[len(f.times)-1]}
	if t, ok := cuts[seq]; ok {
		lr.through = min(lr.through, t)
	}
	for i, t := range f.times {
		if t <= lr.through {
			lr.blocks = append(lr.blocks, &block{t: t, lay: lay, enc: r, idx: f.idx[i]})
		}
	}
	return lr, nil
}

// keptBlocks lays the runs' blocks end to end as Append would have kept
// them: a run that starts at or before the newest block so far drops the
// blocks from its time on (a rewind happened between the two), then the
// retention counts back from the newest block.
func keptBlocks(runs []*loadedRun, retention int64) []*block {
	var blocks []*block
	for _, lr := range runs {
		if len(lr.blocks) == 0 {
			continue
		}
		first := lr.blocks[0].t
		blocks = blocks[:sort.Search(len(blocks), func(i int) bool { return blocks[i].t >= first })]
		blocks = append(blocks, lr.blocks...)
	}
	if len(blocks) == 0 {
		return nil
	}
	oldest := blocks[len(blocks)-1].t - retention
	return blocks[sort.Search(len(blocks), func(i int) bool { return blocks[i].t >= oldest }):]
}

// keep makes a loaded run one of the writer's files.
func (d *Disk) keep(lr *loadedRun) {
	lay := lr.blocks[0].lay
	dl := d.layouts[lay]
	if dl == nil {
		dl = &diskLayout{seq: lr.layout, lay: lay}
		d.layouts[lay] = dl
	}
	dl.runs++
	d.runs[lr.blocks[0].enc] = &diskRun{seq: lr.seq, layout: dl, through: lr.through}
	d.loadedRuns++
}

// removeFiles deletes files of seq at load; a failure is logged, and the
// next load tries again.
func (d *Disk) removeFiles(seq uint64, exts ...string) {
	for _, ext := range exts {
		if err := os.Remove(d.path(seq, ext)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			d.failed("Deleting a history file failed", err, "file", fileName(seq, ext))
		}
	}
}
