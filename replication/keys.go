package replication

import (
	"io"
	"log/slog"
	"strings"
)

// keys names the Redis keys of a pair under its prefix.
type keys string

// session is the key of a session's record.
func (k keys) session(id string) string { return string(k) + "session:" + id }

// idOf is the session id of a session key.
func (k keys) idOf(key string) string { return strings.TrimPrefix(key, string(k)+"session:") }

// stream is the stream of changes.
func (k keys) stream() string { return string(k) + "changes" }

// epoch holds the epoch of the last complete snapshot.
func (k keys) epoch() string { return string(k) + "epoch" }

func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return l
}
