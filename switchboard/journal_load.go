package switchboard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
)

// skip is a stretch of the journal that load could not read.
type skip struct {
	Offset int64  // byte offset of the stretch in the file
	Line   int    // its line, counting from 1
	Reason string // what was wrong with it
}

func (s skip) String() string {
	return fmt.Sprintf("offset %d (line %d): %s", s.Offset, s.Line, s.Reason)
}

// load reads the journal. What it cannot read is skipped and listed in
// j.skips, never refused: a journal that was cut short, zero-filled or
// damaged still gives every session it can vouch for, and a start that
// skipped something lists the kernel table for the rest (see holds).
func (j *journal) load() (map[string]*Session, error) {
	data, err := os.ReadFile(j.path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]*Session{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	return j.parse(data), nil
}

// line is one line of the journal, without its newline.
type line struct {
	b      []byte
	offset int64
	n      int // line number, from 1
}

// parse applies the records of data in order. Records are decoded in
// parallel (JSON decoding is most of a restart's time with a trusted
// kernel: ~10 µs a session). It sets j.whole to the length of the whole
// lines: a last line without its newline is a record torn by a crash or a
// full disk, and is cut off when the journal is opened for appending.
func (j *journal) parse(data []byte) map[string]*Session {
	lines := j.split(data)
	recs, errs := decodeRecords(lines)
	sessions := map[string]*Session{}
	for i, l := range lines {
		if errs[i] != nil {
			recs[i], errs[i] = j.unglue(l)
		}
		switch {
		case errs[i] != nil:
			j.skip(l, errs[i].Error())
		case !j.apply(sessions, recs[i]):
			j.skip(l, fmt.Sprintf("invalid record %q", truncated(l.b)))
		}
	}
	return sessions
}

// recordStart is how every record begins (Op is the first field); inside a
// JSON string the quotes would be escaped, so it starts nothing else.
var recordStart = []byte(`{"op":`)

// unglue reads a line that does not decode as a torn record with a whole
// one glued to it (as earlier versions of the daemon left them after a failed
// write): the prefix is skipped and the last record of the line decoded.
func (j *journal) unglue(l line) (record, error) {
	var rec record
	err := json.Unmarshal(l.b, &rec)
	k := bytes.LastIndex(l.b, recordStart)
	if k <= 0 {
		return rec, err
	}
	if json.Unmarshal(l.b[k:], &rec) != nil {
		return rec, err
	}
	j.skip(l, fmt.Sprintf("torn record (%d bytes) before a whole one", k))
	return rec, nil
}

// split cuts data into lines, skipping the NUL bytes a file system leaves
// where a crash lost data it had allocated, and reports a torn last line.
func (j *journal) split(data []byte) []line {
	var lines []line
	var off int64
	for n := 1; len(data) > 0; n++ {
		end := bytes.IndexByte(data, '\n')
		if end < 0 {
			if nul := countNUL(data); nul < len(data) {
				j.skip(line{offset: off + int64(nul), n: n}, fmt.Sprintf("torn last record (%d bytes without a newline)", len(data)-nul))
			} else {
				j.skip(line{offset: off, n: n}, fmt.Sprintf("%d NUL bytes", nul))
			}
			break
		}
		l := line{b: data[:end], offset: off, n: n}
		if nul := countNUL(l.b); nul > 0 {
			j.skip(l, fmt.Sprintf("%d NUL bytes", nul))
			l.b, l.offset = l.b[nul:], l.offset+int64(nul)
		}
		if len(bytes.TrimSpace(l.b)) > 0 {
			lines = append(lines, l)
		}
		data = data[end+1:]
		off += int64(end + 1)
		j.whole = off
	}
	return lines
}

func countNUL(b []byte) int {
	n := 0
	for n < len(b) && b[n] == 0 {
		n++
	}
	return n
}

func (j *journal) skip(l line, reason string) {
	j.skips = append(j.skips, skip{Offset: l.offset, Line: l.n, Reason: reason})
}

// truncated quotes at most 80 bytes of a bad record.
func truncated(b []byte) []byte {
	if len(b) > 80 {
		return append(b[:80:80], "…"...)
	}
	return b
}

// decodeRecords decodes lines on every CPU; errs[i] is line i's error.
func decodeRecords(lines []line) ([]record, []error) {
	recs := make([]record, len(lines))
	errs := make([]error, len(lines))
	workers := min(runtime.GOMAXPROCS(0), 1+len(lines)/1024)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(lines); i += workers {
				errs[i] = json.Unmarshal(lines[i].b, &recs[i])
			}
		}()
	}
	wg.Wait()
	return recs, errs
}

// apply applies one record to sessions, counting live and dead records as
// put and del do. It reports false for a record that is not one.
func (j *journal) apply(sessions map[string]*Session, rec record) bool {
	if rec.Op == "txn" {
		return j.applyTxn(sessions, rec)
	}
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

// applyTxn applies the records of a "txn" record, all of them or, if one
// is not a valid put or del, none.
func (j *journal) applyTxn(sessions map[string]*Session, rec record) bool {
	if len(rec.Txn) == 0 {
		return false
	}
	for _, r := range rec.Txn {
		if !(r.Op == "put" && r.Session != nil && r.Session.ID != "") && !(r.Op == "del" && r.ID != "") {
			return false
		}
	}
	for _, r := range rec.Txn {
		r.Gen = rec.Gen
		j.apply(sessions, r)
	}
	return true
}
