package switchboard

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/nftrtpproxy/nftrtpproxy/relay"
)

// journal is the on-disk record of sessions: an append-only file of JSON
// lines, each putting or deleting one session, compacted when most of it is
// history. Records are not fsynced: a killed process loses nothing the
// kernel has accepted; only a power loss can. Not safe for concurrent use;
// Manager serialises it.
//
// Faults never leave the file unreadable. Records are appended in one
// write(2); should it fail or fall short (ENOSPC, EIO), the file is cut back
// to its last whole record, so the next record never follows a torn one.
// On load, what cannot be read (a record torn by a crash, a block of NUL
// bytes, a damaged record) is skipped and reported by byte offset and line;
// the start then lists the kernel table rather than trusting the journal
// (see holds). Compaction writes a new file, fsyncs it, renames it over the
// old one and fsyncs the directory; while serving, the Manager writes it
// in the background and copies the records appended meanwhile after it
// (compaction.go).
//
// The journal also tells what the kernel holds, so that a restart can skip
// listing the table (see Manager.Start): each put records which of the
// session's legs carry a lock, and each record the ruleset generation the
// kernel is at once the record's transaction has committed, when that is
// known. A compaction ends with a "gen" record naming the kernel's boot and
// namespace.
type journal struct {
	path string
	f    journalFile
	size int64 // bytes of whole records in f
	torn bool  // f may end in a torn record: cut it back to size before writing
	buf  []byte
	live int // records that describe current sessions
	dead int // records superseded since the last compaction
	// retry is the count of dead records at which a failed compaction is
	// tried again (not on every record while the disk is full).
	retry int

	locks  map[string]uint8 // locks by session id as loaded, for Start; nil after it
	gen    generations      // where stamps come from; nil: none
	failed bool             // a write failed: stamp nothing more
	skips  []skip           // what load could not read
	whole  int64            // bytes of whole lines loaded
	last   record           // the last "gen" record loaded
	tail   uint32           // the generation stamped on the last record loaded
}

// journalFile is what the journal needs of its *os.File; tests wrap one to
// inject faults.
type journalFile interface {
	Write(b []byte) (int, error)
	Truncate(size int64) error
	Close() error
}

// generations tells the ruleset generation the kernel is at, if it is known
// without asking it: the Manager's genTracker, from what each Apply
// answered (the dataplane counts its transactions since it last read the
// generation, so a stamp costs no round trip to the kernel).
type generations interface {
	Expected() (relay.Generation, bool)
}

type record struct {
	Op      string   `json:"op"` // "put", "del", "gen" or "txn"
	ID      string   `json:"id,omitempty"`
	Session *Session `json:"session,omitempty"`
	// Locks has bit k set when leg k of Session is installed with a lock.
	Locks uint8 `json:"locks,omitempty"`
	// Gen is the ruleset generation after this record's transaction, zero
	// when unknown.
	Gen uint32 `json:"gen,omitempty"`
	// Boot and NetNS identify the kernel and namespace of a "gen" record.
	Boot  string `json:"boot,omitempty"`
	NetNS uint64 `json:"netns,omitempty"`
	// Txn holds the "put" and "del" records of one request that changed
	// several sessions (Manager.Change): a load applies all or none.
	Txn []record `json:"txn,omitempty"`
}

const journalName = "sessions.journal"

// openJournal reads the journal in dir (creating dir if needed), opens it
// for appending and returns its sessions by id. A torn last record is cut
// off; what else load skipped is in j.skips, for the caller to report and
// then rewrite.
func openJournal(dir string) (*journal, map[string]*Session, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, nil, fmt.Errorf("journal: %w", err)
	}
	j := &journal{path: filepath.Join(dir, journalName), locks: map[string]uint8{}}
	sessions, err := j.load()
	if err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(j.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, nil, fmt.Errorf("journal: %w", err)
	}
	// Cutting back needs no free space: it works on a full disk.
	if err := f.Truncate(j.whole); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("journal %q: cut back to %d bytes: %w", j.path, j.whole, err)
	}
	j.f, j.size = f, j.whole
	return j, sessions, nil
}

// damaged reports whether load skipped something before the last line.
func (j *journal) damaged() bool {
	for _, s := range j.skips {
		if s.Offset < j.whole {
			return true
		}
	}
	return false
}

// rewrite keeps the damaged journal as sessions.journal.unreadable for a
// post-mortem and compacts it to sessions, so that the next start does not
// skip the same records again. Should that fail (a full disk), the journal
// stays as it is and still serves: its bad lines end in a newline, and
// records appended after them read back.
func (j *journal) rewrite(sessions map[string]*Session) error {
	kept := j.path + ".unreadable"
	if err := os.Remove(kept); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("journal: %w", err)
	}
	if err := os.Link(j.path, kept); err != nil {
		return fmt.Errorf("journal: keep a copy: %w", err)
	}
	return j.compact(sessions, j.locks)
}

// holds reports whether the kernel at g holds exactly what the journal
// says: its last record carries g's generation, of g's boot and namespace,
// and nothing before it was skipped.
func (j *journal) holds(g relay.Generation) bool {
	at := relay.Generation{Boot: j.last.Boot, NetNS: j.last.NetNS, ID: j.tail}
	return j.tail != 0 && len(j.skips) == 0 && at.Same(g)
}

// stamp returns the generation to record, or zero.
func (j *journal) stamp() (relay.Generation, bool) {
	if j.gen == nil || j.failed {
		return relay.Generation{}, false
	}
	return j.gen.Expected()
}

// compact rewrites the journal with one record per session and reopens it
// for appending. The new file is fsynced before it replaces the old one,
// and the directory after, so that a power loss leaves one or the other.
// On failure the old journal stays in use and compaction is not tried
// again for another compactEvery records.
func (j *journal) compact(sessions map[string]*Session, locks map[string]uint8) error {
	snap := j.snapshot(len(sessions))
	for id, s := range sessions {
		snap.add(s, locks[id])
	}
	return j.compactTo(snap)
}

// compactTo writes snap and makes it the journal, as compact.
func (j *journal) compactTo(snap snapshot) error {
	f, size, err := j.writeSnapshot(snap)
	if err == nil {
		err = j.install(f, size, snap, len(snap.sessions))
	}
	if err != nil {
		j.retry = j.dead + compactEvery
		return fmt.Errorf("journal: compact: %w", err)
	}
	return nil
}

// snapshot starts the snapshot of n sessions at the journal's end now.
func (j *journal) snapshot(n int) snapshot {
	snap := snapshot{sessions: make([]*Session, 0, n), locks: make([]uint8, 0, n), from: j.size, dead: j.dead}
	snap.gen, snap.hasGen = j.stamp()
	return snap
}

func (s *snapshot) add(sess *Session, locks uint8) {
	s.sessions, s.locks = append(s.sessions, sess), append(s.locks, locks)
}

// snapshot is what a compaction writes: every session with its lock bits
// and the generation stamp at one moment, and where the journal ended then
// (from) with how much of it was history (dead).
type snapshot struct {
	sessions []*Session
	locks    []uint8
	gen      relay.Generation
	hasGen   bool
	from     int64
	dead     int
}

// tempName is the journal's name while a compaction writes it.
func (j *journal) tempName() string { return j.path + ".tmp" }

// writeSnapshot writes snap to a new file beside the journal and fsyncs
// it; it returns the file, open for appending, and its size. It reads
// nothing of j but its path, so it runs without the Manager's lock while
// records are appended to the journal (Manager.startCompaction).
func (j *journal) writeSnapshot(snap snapshot) (*os.File, int64, error) {
	f, err := os.OpenFile(j.tempName(), os.O_CREATE|os.O_TRUNC|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, 0, err
	}
	cw := &countingWriter{w: f}
	w := bufio.NewWriterSize(cw, 1<<20)
	// The hand-written encoder (journal_encode.go), as for every record:
	// encoding/json took ten times as long per session.
	var line []byte
	writeRec := func(rec record) error {
		line = append(appendRecord(line[:0], &rec), '\n')
		_, err := w.Write(line)
		return err
	}
	for i, s := range snap.sessions {
		if err = writeRec(record{Op: "put", Session: s, Locks: snap.locks[i]}); err != nil {
			break
		}
	}
	if snap.hasGen && err == nil {
		g := snap.gen
		err = writeRec(record{Op: "gen", Gen: g.ID, Boot: g.Boot, NetNS: g.NetNS})
	}
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		// A partial copy must not hold the space a full disk needs.
		_ = f.Close()
		_ = os.Remove(j.tempName())
		return nil, 0, err
	}
	return f, cw.n, nil
}

// install makes f, the written snapshot snap of size bytes, the journal:
// the records appended since the snapshot (the journal from snap.from on)
// are copied after it and the copy fsynced, then f is renamed over the
// journal and the directory fsynced. live is the count of sessions now.
// Should anything before the rename fail, f is removed and the journal
// stays as it was.
func (j *journal) install(f *os.File, size int64, snap snapshot, live int) error {
	tail, err := j.copyTail(f, snap.from)
	if err == nil && tail > 0 {
		err = f.Sync()
	}
	if err == nil {
		err = os.Rename(j.tempName(), j.path)
	}
	if err != nil {
		_ = f.Close()
		_ = os.Remove(j.tempName())
		return err
	}
	if j.f != nil {
		j.f.Close()
	}
	j.f, j.size, j.torn = f, size+tail, false
	j.live, j.dead, j.retry = live, j.dead-snap.dead, 0
	return syncDir(filepath.Dir(j.path))
}

// copyTail appends to f the journal's whole records from offset from on.
func (j *journal) copyTail(f *os.File, from int64) (int64, error) {
	if from >= j.size {
		return 0, nil
	}
	old, err := os.Open(j.path)
	if err != nil {
		return 0, err
	}
	defer old.Close()
	n, err := io.Copy(f, io.NewSectionReader(old, from, j.size-from))
	if err == nil && n < j.size-from {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// syncDir fsyncs dir, making a rename in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// write appends rec stamped with the current generation.
func (j *journal) write(rec record) error { return j.writeRecords(rec) }

// writeRecords appends recs, each stamped with the current generation, in
// one write(2). Should the write fail or fall short, the file is cut back
// to its last whole record (a later write tries again if that fails too),
// so the next record never follows a torn one, and an error tells that
// none of recs was recorded. After a failed write nothing more is stamped:
// the kernel may have committed what the journal lacks, so the next start
// lists the table.
func (j *journal) writeRecords(recs ...record) error {
	buf := j.buf[:0]
	for _, rec := range recs {
		if g, ok := j.stamp(); ok {
			rec.Gen = g.ID
		}
		buf = append(appendRecord(buf, &rec), '\n') // journal_encode.go
	}
	j.buf = buf[:0]
	err := j.cutBack()
	if err == nil {
		err = j.append(buf)
	}
	if err != nil {
		j.failed = true
		return fmt.Errorf("journal %q: %w", j.path, err)
	}
	return nil
}

// append writes b, which ends a record, at the end of the journal.
func (j *journal) append(b []byte) error {
	n, err := j.f.Write(b)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		j.torn = true
		return errors.Join(err, j.cutBack())
	}
	j.size += int64(n)
	return nil
}

// cutBack truncates a journal that may end in a torn record to its whole
// records.
func (j *journal) cutBack() error {
	if !j.torn {
		return nil
	}
	if err := j.f.Truncate(j.size); err != nil {
		return fmt.Errorf("cut back to %d bytes: %w", j.size, err)
	}
	j.torn = false
	return nil
}

// mark appends a gen record: the generation the kernel is at and its
// identity, if known.
func (j *journal) mark() error {
	g, ok := j.stamp()
	if !ok {
		return nil
	}
	return j.write(record{Op: "gen", Boot: g.Boot, NetNS: g.NetNS})
}

// put records s (new or changed) and which of its installed legs carry a
// lock.
func (j *journal) put(s *Session, installed []relay.Leg, isNew bool) error {
	if err := j.write(record{Op: "put", Session: s, Locks: lockBits(installed)}); err != nil {
		return err
	}
	if isNew {
		j.live++
	} else {
		j.dead++
	}
	return nil
}

// del records the deletion of id.
func (j *journal) del(id string) error {
	if err := j.write(record{Op: "del", ID: id}); err != nil {
		return err
	}
	j.live--
	j.dead += 2
	return nil
}

// lockBits has bit k set when legs[k] carries a lock.
func lockBits(legs []relay.Leg) uint8 {
	var b uint8
	for k, l := range legs {
		if l.Lock.IsValid() {
			b |= 1 << k
		}
	}
	return b
}

// needsCompaction reports whether history outweighs the live records.
func (j *journal) needsCompaction() bool {
	return j.dead > compactEvery && j.dead > 2*j.live && j.dead >= j.retry
}

// compactEvery is the least history worth a compaction.
const compactEvery = 4096

func (j *journal) close() error {
	if j.f == nil {
		return nil
	}
	return j.f.Close()
}
