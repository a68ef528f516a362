package notify

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/calls"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// Options tune a Notifier; zero fields take the defaults noted.
type Options struct {
	// Logger receives a line per notification sent or given up; nil
	// discards.
	Logger *slog.Logger
	// QueueLength bounds the notifications waiting: 1024.
	QueueLength int
	// Tries is how often a notification is tried: 3.
	Tries int
	// Backoff is the pause after the first failure, doubled after each:
	// 500 ms.
	Backoff time.Duration
	// Timeout bounds one attempt: 5 s (rtpengine's).
	Timeout time.Duration
}

// Notifier sends timeout notifications. It is safe for concurrent use.
type Notifier struct {
	cfg    Config
	log    *slog.Logger
	opts   Options
	client *http.Client
	queue  chan job

	mu     sync.Mutex
	recent map[string]time.Time // calls notified lately, by kind and call-id
}

// job is one notification to send.
type job struct {
	callID string
	send   func(ctx context.Context) error
	what   string
}

// New returns a Notifier for cfg.
func New(cfg Config, opts Options) *Notifier {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	opts.QueueLength = positive(opts.QueueLength, 1024)
	opts.Tries = positive(opts.Tries, 3)
	opts.Backoff = positive(opts.Backoff, 500*time.Millisecond)
	opts.Timeout = positive(opts.Timeout, 5*time.Second)
	return &Notifier{cfg: cfg, log: opts.Logger, opts: opts, client: &http.Client{Timeout: opts.Timeout},
		queue: make(chan job, opts.QueueLength), recent: map[string]time.Time{}}
}

func positive[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// recentTTL is how long a notified call is remembered, so that its other
// streams' ends do not notify it again.
const recentTTL = time.Minute

// SessionEnded queues the notifications of a session a timeout ended;
// other ends are ignored. It never blocks.
func (n *Notifier) SessionEnded(e switchboard.Ended) {
	if e.Reason != switchboard.EndRingingTimeout && e.Reason != switchboard.EndMediaTimeout {
		return
	}
	l := e.Session.Labels
	if sock, tag := l[calls.LabelNotifySocket], l[calls.LabelNotifyTag]; sock != "" && tag != "" {
		if t, err := url.PathUnescape(tag); err == nil {
			tag = t // rtpproxy URL-unquotes the tag
		}
		n.enqueue("rtpproxy", callID(l), e.At, job{what: "rtpproxy notify " + sock,
			send: func(ctx context.Context) error { return sendTag(ctx, sock, tag) }})
	}
	if n.cfg.XMLRPCURL == "" || callID(l) == "" {
		return
	}
	body, err := n.xmlrpcBody(l)
	if err != nil {
		n.log.Info("no xml-rpc timeout notification", "call_id", callID(l), "reason", err)
		return
	}
	url := n.cfg.XMLRPCURL
	n.enqueue("xmlrpc", callID(l), e.At, job{what: "xml-rpc " + url,
		send: func(ctx context.Context) error { return n.post(ctx, url, body) }})
}

// enqueue adds j unless the call was notified this way lately or the queue
// is full.
func (n *Notifier) enqueue(kind, id string, at time.Time, j job) {
	j.callID = id
	key := kind + " " + id
	n.mu.Lock()
	for k, t := range n.recent {
		if at.Sub(t) > recentTTL {
			delete(n.recent, k)
		}
	}
	if id != "" {
		if _, dup := n.recent[key]; dup {
			n.mu.Unlock()
			return
		}
		n.recent[key] = at
	}
	n.mu.Unlock()
	select {
	case n.queue <- j:
	default:
		n.log.Warn("timeout notification dropped: queue full", "call_id", id, "to", j.what, "queue", n.opts.QueueLength)
	}
}

// Run sends the queued notifications until ctx is done; it returns nil
// then. Notifications still queued are not sent.
func (n *Notifier) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case j := <-n.queue:
			n.deliver(ctx, j)
		}
	}
}

// deliver tries j up to Tries times, pausing Backoff, then twice that.
func (n *Notifier) deliver(ctx context.Context, j job) {
	pause := n.opts.Backoff
	for try := 1; ; try++ {
		actx, cancel := context.WithTimeout(ctx, n.opts.Timeout)
		err := j.send(actx)
		cancel()
		if err == nil {
			n.log.Info("timeout notification sent", "call_id", j.callID, "to", j.what)
			return
		}
		if try >= n.opts.Tries || ctx.Err() != nil {
			n.log.Warn("timeout notification failed", "call_id", j.callID, "to", j.what, "tries", try, "err", err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause *= 2
	}
}

// callID is the call-id a front end recorded in a session's labels.
func callID(l map[string]string) string {
	for _, k := range []string{"call-id", rtpproxyLabelCall, "lrkproxy-call-id", "mediaproxy-call-id"} {
		if v := l[k]; v != "" {
			return v
		}
	}
	return ""
}

const rtpproxyLabelCall = "rtpproxy-call-id"

// tags returns the from-tag and to-tag a front end recorded: the offerer's
// and answerer's of the call layer, or the creator's and the other
// party's of rtpproxy.
func tags(l map[string]string) (from, to string) {
	if l["offerer-tag"] != "" {
		return l["offerer-tag"], l["answerer-tag"]
	}
	return l["rtpproxy-from-tag"], l["rtpproxy-to-tag"]
}

// xmlrpcBody is the method call of the configured format for a session's
// call.
func (n *Notifier) xmlrpcBody(l map[string]string) ([]byte, error) {
	if n.cfg.XMLRPCFormat == XMLRPCTeardown {
		return methodCall("teardown", callID(l))
	}
	from, to := tags(l)
	if from == "" || to == "" {
		return nil, fmt.Errorf("dlg.terminate_dlg needs both tags (from %q, to %q): the call was never answered", from, to)
	}
	return methodCall("dlg.terminate_dlg", callID(l), from, to)
}

// methodCall encodes an XML-RPC methodCall with string parameters.
func methodCall(method string, params ...string) ([]byte, error) {
	type value struct {
		String string `xml:"value>string"`
	}
	type call struct {
		XMLName xml.Name `xml:"methodCall"`
		Method  string   `xml:"methodName"`
		Params  []value  `xml:"params>param"`
	}
	c := call{Method: method}
	for _, p := range params {
		c.Params = append(c.Params, value{p})
	}
	b, err := xml.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("xml-rpc %s: %w", method, err)
	}
	return append([]byte(xml.Header), b...), nil
}

// post sends an XML-RPC call. A fault is an error, except Kamailio's
// "dialog not found" (the dialog ended meanwhile), as rtpengine treats it.
func (n *Notifier) post(ctx context.Context, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/xml")
	resp, err := n.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return fmt.Errorf("reading the reply: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("http status %s", resp.Status)
	}
	if low := strings.ToLower(string(reply)); strings.Contains(low, "<fault>") && !strings.Contains(low, "dialog not found") {
		return fmt.Errorf("xml-rpc fault: %s", bytes.TrimSpace(reply))
	}
	return nil
}

// sendTag writes "tag\n" on a new stream connection to sock, rtpproxy's
// timeout notification.
func sendTag(ctx context.Context, sock, tag string) error {
	network, addr, err := notifyAddr(sock)
	if err != nil {
		return err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetWriteDeadline(dl)
	}
	if _, err := io.WriteString(c, tag+"\n"); err != nil {
		return fmt.Errorf("notify socket %q: %w", sock, err)
	}
	return nil
}

// notifyAddr maps an rtpproxy notify socket onto a network and address.
func notifyAddr(sock string) (network, addr string, err error) {
	switch {
	case strings.HasPrefix(sock, "tcp:"):
		addr = strings.Replace(sock[len("tcp:"):], "%%CC_SELF%%", "127.0.0.1", 1)
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return "", "", fmt.Errorf("notify socket %q: %w", sock, err)
		}
		return "tcp", addr, nil
	case strings.HasPrefix(sock, "unix:"):
		return "unix", sock[len("unix:"):], nil
	case strings.HasPrefix(sock, "/"):
		return "unix", sock, nil
	}
	return "", "", fmt.Errorf("notify socket %q: want tcp:HOST:PORT, unix:PATH or a path", sock)
}
