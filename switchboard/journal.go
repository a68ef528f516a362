package switchboard

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/nftrtpproxy/nftrtpproxy/relay"
)

// journal is the on-disk record of sessions: an append-only file of JSON
// lines, each putting or deleting one session, compacted when most of it is
// history. Each record is one write(2), so a SIGKILL loses at most the
// record being written, and a torn last line is ignored on load. Records are
// not fsynced: a killed process loses nothing the kernel has accepted;
// only a power loss can. Not safe for concurrent use; Manager serialises it.
//
// The journal also tells what the kernel holds, so that a restart can skip
// listing the table (see Manager.Start): each put records which of the
// session's legs carry a lock, and each record the ruleset generation the
// kernel is at once the record's transaction has committed, when that is
// known. A compaction ends with a "gen" record naming the kernel's boot and
// namespace.
type journal struct {
	path string
	f    *os.File
	live int // records that describe current sessions
	dead int // records superseded since the last compaction

	locks  map[string]uint8 // locks by session id as loaded, for Start; nil after it
	gen    generations      // where stamps come from; nil: none
	failed bool             // a write failed: stamp nothing more
	torn   bool             // the file ends in a torn record
	last   record           // the last "gen" record loaded
	tail   uint32           // the generation stamped on the last record loaded
}

// generations tells the ruleset generation the kernel is at, if it is known
// without asking it (relay.Dataplane.Expected: the dataplane counts its
// transactions since it last read the generation, so a stamp costs no
// round trip to the kernel).
type generations interface {
	Expected() (relay.Generation, bool)
}

type record struct {
	Op      string   `json:"op"` // "put", "del" or "gen"
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
}

const journalName = "sessions.journal"

// openJournal reads the journal in dir (creating dir if needed), opens it
// for appending and returns its sessions by id.
func openJournal(dir string) (*journal, map[string]*Session, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, nil, fmt.Errorf("journal: %w", err)
	}
	j := &journal{path: filepath.Join(dir, journalName), locks: map[string]uint8{}}
	sessions, err := j.load()
	if err != nil {
		return nil, nil, err
	}
	if j.torn {
		// Appending after a torn line would glue the next record to it.
		return j, sessions, j.compact(sessions, j.locks)
	}
	if j.f, err = os.OpenFile(j.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640); err != nil {
		return nil, nil, fmt.Errorf("journal: %w", err)
	}
	return j, sessions, nil
}

// holds reports whether the kernel at g holds exactly what the journal
// says: its last record carries g's generation, of g's boot and namespace.
func (j *journal) holds(g relay.Generation) bool {
	at := relay.Generation{Boot: j.last.Boot, NetNS: j.last.NetNS, ID: j.tail}
	return j.tail != 0 && at.Same(g)
}

// load reads the journal. Records are decoded in parallel (JSON decoding
// is most of a restart's time with a trusted kernel: ~10 µs a session)
// and applied in order.
func (j *journal) load() (map[string]*Session, error) {
	sessions := map[string]*Session{}
	data, err := os.ReadFile(j.path)
	if errors.Is(err, os.ErrNotExist) {
		return sessions, nil
	}
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	lines := bytes.SplitAfter(data, []byte{'\n'})
	if last := lines[len(lines)-1]; !bytes.HasSuffix(last, []byte{'\n'}) {
		lines = lines[:len(lines)-1] // a torn last record (no newline) is dropped
		j.torn = len(last) > 0
	}
	recs, err := decodeRecords(lines)
	if err != nil {
		return nil, fmt.Errorf("journal %q: %w", j.path, err)
	}
	for i, rec := range recs {
		if !j.apply(sessions, rec) {
			return nil, fmt.Errorf("journal %q: line %d: invalid record %q", j.path, i+1, bytes.TrimSpace(lines[i]))
		}
	}
	return sessions, nil
}

// decodeRecords decodes lines on every CPU; an error names the first bad
// line.
func decodeRecords(lines [][]byte) ([]record, error) {
	recs := make([]record, len(lines))
	errs := make([]error, len(lines))
	workers := min(runtime.GOMAXPROCS(0), 1+len(lines)/1024)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(lines); i += workers {
				errs[i] = json.Unmarshal(lines[i], &recs[i])
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
	}
	return recs, nil
}

// apply applies one record to sessions, counting live and dead records as
// put and del do. It reports false for a record that is not one.
func (j *journal) apply(sessions map[string]*Session, rec record) bool {
	switch {
	case rec.Op == "put" && rec.Session != nil && rec.Session.ID != "":
		if sessions[rec.Session.ID] == nil {
			j.live++
		} else {
			j.dead++
		}
		sessions[rec.Session.ID] = rec.Session
		j.locks[rec.Session.ID] = rec.Locks
	case rec.Op == "del" && rec.ID != "":
		if sessions[rec.ID] != nil {
			j.live--
		}
		j.dead += 2
		delete(sessions, rec.ID)
		delete(j.locks, rec.ID)
	case rec.Op == "gen" && rec.Boot != "":
		j.last = rec
		j.dead++
	default:
		return false
	}
	j.tail = rec.Gen
	return true
}

// stamp returns the generation to record, or zero.
func (j *journal) stamp() (relay.Generation, bool) {
	if j.gen == nil || j.failed {
		return relay.Generation{}, false
	}
	return j.gen.Expected()
}

// compact rewrites the journal with one record per session and reopens it
// for appending.
func (j *journal) compact(sessions map[string]*Session, locks map[string]uint8) error {
	tmp := j.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	enc := json.NewEncoder(w)
	for id, s := range sessions {
		if err := enc.Encode(record{Op: "put", Session: s, Locks: locks[id]}); err != nil {
			f.Close()
			return fmt.Errorf("journal: %w", err)
		}
	}
	if g, ok := j.stamp(); ok {
		err = enc.Encode(record{Op: "gen", Gen: g.ID, Boot: g.Boot, NetNS: g.NetNS})
	}
	err = errors.Join(err, w.Flush(), f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(tmp, j.path)
	}
	if err != nil {
		return fmt.Errorf("journal: compact: %w", err)
	}
	if j.f != nil {
		j.f.Close()
	}
	if j.f, err = os.OpenFile(j.path, os.O_APPEND|os.O_WRONLY, 0o640); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	j.live, j.dead = len(sessions), 0
	return nil
}

// write appends rec stamped with the current generation. After a failed
// write the kernel may hold what the journal lacks (a deleted session's
// legs are gone), so nothing more is stamped and the next start lists the
// table.
func (j *journal) write(rec record) error {
	if g, ok := j.stamp(); ok {
		rec.Gen = g.ID
	}
	b, err := json.Marshal(rec)
	if err == nil {
		_, err = j.f.Write(append(b, '\n'))
	}
	if err != nil {
		j.failed = true
		return fmt.Errorf("journal: %w", err)
	}
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
	if isNew {
		j.live++
	} else {
		j.dead++
	}
	return j.write(record{Op: "put", Session: s, Locks: lockBits(installed)})
}

// del records the deletion of id.
func (j *journal) del(id string) error {
	j.live--
	j.dead += 2
	return j.write(record{Op: "del", ID: id})
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
func (j *journal) needsCompaction() bool { return j.dead > 4096 && j.dead > 2*j.live }

func (j *journal) close() error {
	if j.f == nil {
		return nil
	}
	return j.f.Close()
}
