package ctlsock

import (
	"errors"
	"log/slog"
	"net"
	"time"
)

// Pauses after a failed Accept, as net/http's Server takes them.
const (
	firstPause = 5 * time.Millisecond
	maxPause   = time.Second
)

// Listener returns l whose Accept retries failures (out of file
// descriptors, a connection reset before it was accepted) after a pause
// that starts at 5 ms and doubles up to 1 s, and closes the connections f
// refuses. It returns an error only once l is closed. A nil logger
// discards.
func Listener(l net.Listener, f *Filter, log *slog.Logger) net.Listener {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &listener{Listener: l, f: f, log: log, sleep: time.Sleep}
}

type listener struct {
	net.Listener
	f     *Filter
	log   *slog.Logger
	sleep func(time.Duration)
}

func (l *listener) Accept() (net.Conn, error) {
	var pause time.Duration
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			if l.f.Permit(c.RemoteAddr()) {
				return c, nil
			}
			c.Close()
			continue
		}
		if errors.Is(err, net.ErrClosed) {
			return nil, err
		}
		pause = min(max(2*pause, firstPause), maxPause)
		l.log.Warn("control: accept failed; retrying", "addr", l.Addr().String(), "err", err, "pause", pause)
		l.sleep(pause)
	}
}
