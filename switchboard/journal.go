package switchboard

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// journal is the on-disk record of sessions: an append-only file of JSON
// lines, each putting or deleting one session, compacted when most of it is
// history. Each record is one write(2), so a SIGKILL loses at most the
// record being written, and a torn last line is ignored on load. Records are
// not fsynced: a killed process loses nothing the kernel has accepted;
// only a power loss can. Not safe for concurrent use; Manager serialises it.
type journal struct {
	path string
	f    *os.File
	live int // records that describe current sessions
	dead int // records superseded since the last compaction
}

type record struct {
	Op      string   `json:"op"` // "put" or "del"
	ID      string   `json:"id,omitempty"`
	Session *Session `json:"session,omitempty"`
}

const journalName = "sessions.journal"

// openJournal reads the journal in dir (creating dir if needed) and returns
// its sessions by id.
func openJournal(dir string) (*journal, map[string]*Session, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, nil, fmt.Errorf("journal: %w", err)
	}
	j := &journal{path: filepath.Join(dir, journalName)}
	sessions, err := j.load()
	if err != nil {
		return nil, nil, err
	}
	if err := j.compact(sessions); err != nil {
		return nil, nil, err
	}
	return j, sessions, nil
}

func (j *journal) load() (map[string]*Session, error) {
	sessions := map[string]*Session{}
	f, err := os.Open(j.path)
	if errors.Is(err, os.ErrNotExist) {
		return sessions, nil
	}
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	for line := 1; ; line++ {
		b, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			return sessions, nil // a torn last record (no newline) is dropped
		}
		if err != nil {
			return nil, fmt.Errorf("journal %q: %w", j.path, err)
		}
		if err := apply(sessions, b); err != nil {
			return nil, fmt.Errorf("journal %q: line %d: %w", j.path, line, err)
		}
	}
}

func apply(sessions map[string]*Session, b []byte) error {
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		return err
	}
	switch {
	case rec.Op == "put" && rec.Session != nil && rec.Session.ID != "":
		sessions[rec.Session.ID] = rec.Session
	case rec.Op == "del" && rec.ID != "":
		delete(sessions, rec.ID)
	default:
		return fmt.Errorf("invalid record %q", bytes.TrimSpace(b))
	}
	return nil
}

// compact rewrites the journal with one record per session and reopens it
// for appending.
func (j *journal) compact(sessions map[string]*Session) error {
	tmp := j.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	enc := json.NewEncoder(w)
	for _, s := range sessions {
		if err := enc.Encode(record{Op: "put", Session: s}); err != nil {
			f.Close()
			return fmt.Errorf("journal: %w", err)
		}
	}
	err = errors.Join(w.Flush(), f.Sync(), f.Close())
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

func (j *journal) write(rec record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if _, err := j.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// put records s (new or changed).
func (j *journal) put(s *Session, isNew bool) error {
	if isNew {
		j.live++
	} else {
		j.dead++
	}
	return j.write(record{Op: "put", Session: s})
}

// del records the deletion of id.
func (j *journal) del(id string) error {
	j.live--
	j.dead += 2
	return j.write(record{Op: "del", ID: id})
}

// needsCompaction reports whether history outweighs the live records.
func (j *journal) needsCompaction() bool { return j.dead > 4096 && j.dead > 2*j.live }

func (j *journal) close() error {
	if j.f == nil {
		return nil
	}
	return j.f.Close()
}
