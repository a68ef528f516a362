package switchboard

import "sync"

// Background compaction. A compaction rewrites the journal as one record
// per session; with 50k sessions that is ~100 ms of encoding and an fsync,
// which under the Manager's lock every request would wait for. So a
// request that finds the journal mostly history only takes a snapshot
// under the lock — each session (committed sessions are never changed in
// place, so the pointers are the snapshot), its lock bits and where the
// journal ends — and a goroutine writes and fsyncs the new file without
// the lock, while requests go on appending to the old one. Under the lock
// again, the records appended meanwhile are copied after the snapshot, and
// the new file is fsynced and renamed over the old one (journal.install).
// A crash before the rename leaves the old journal whole; after it, the
// new one holds everything.

// compactor is the Manager's background compaction, guarded by
// Manager.mu: at most one runs, and Close waits for it.
type compactor struct {
	running bool
	closed  bool
	wg      sync.WaitGroup
	// written, when set (tests), runs once the snapshot is written, before
	// the compaction takes the lock to install it.
	written func()
}

// startCompaction starts a background compaction unless one runs or the
// Manager is closing. Called with m.mu held.
func (m *Manager) startCompaction() {
	c := &m.compaction
	if c.running || c.closed {
		return
	}
	j, snap := m.j, m.snapshot()
	c.running = true
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f, size, err := j.writeSnapshot(snap)
		if c.written != nil {
			c.written()
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		c.running = false
		if err == nil {
			err = j.install(f, size, snap, len(m.sessions))
		}
		if err != nil {
			j.retry = j.dead + compactEvery
			m.log.Error("journal compaction failed; the old journal stays in use", "err", err)
			return
		}
		m.obs.Compacted()
	}()
}

// stopCompaction waits for a running compaction and lets no other start.
func (m *Manager) stopCompaction() {
	m.mu.Lock()
	m.compaction.closed = true
	m.mu.Unlock()
	m.compaction.wg.Wait()
}
