package lrkproxy

import (
	"sync"
	"time"
)

// replyCache remembers the reply to each (sender, cookie) for ttl: the
// module resends a request with the same cookie when its reply is late
// (lrkproxy_retr times, lrkproxy_tout seconds apart), and a resent S must
// not be executed twice. Copies that arrive while the first is processed
// wait for its reply. Safe for concurrent use.
type replyCache struct {
	ttl time.Duration
	max int

	mu      sync.Mutex
	entries map[string]*cached
}

type cached struct {
	done    chan struct{} // closed once reply is set
	reply   []byte
	created time.Time
}

func newReplyCache(ttl time.Duration, max int) *replyCache {
	return &replyCache{ttl: ttl, max: max, entries: map[string]*cached{}}
}

// claim returns the entry for key and whether the caller is its first
// claimant, who must fill it.
func (c *replyCache) claim(key string, now time.Time) (*cached, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok && now.Sub(e.created) < c.ttl {
		return e, false
	}
	if len(c.entries) >= c.max {
		c.expireLocked(now)
	}
	e := &cached{done: make(chan struct{}), created: now}
	c.entries[key] = e
	return e, true
}

func (c *replyCache) fill(e *cached, reply []byte) {
	e.reply = reply
	close(e.done)
}

func (c *replyCache) expire(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expireLocked(now)
}

func (c *replyCache) expireLocked(now time.Time) {
	for k, e := range c.entries {
		if now.Sub(e.created) < c.ttl {
			continue
		}
		select {
		case <-e.done:
			delete(c.entries, k)
		default: // still being processed; copies wait on it
		}
	}
}
