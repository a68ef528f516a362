package httpapi

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/calls/sdprelay"
	"github.com/nftrtpproxy/nftrtpproxy/internal/ctlsock"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
	"golang.org/x/net/netutil"
)

// Sessions is what the API needs from the session manager.
type Sessions interface {
	Alloc(ctx context.Context, r switchboard.AllocRequest) (*switchboard.Session, error)
	Update(ctx context.Context, id string, r switchboard.UpdateRequest) (*switchboard.Session, error)
	AdjustTimeout(ctx context.Context, id string, to switchboard.State) (*switchboard.Session, error)
	Delete(ctx context.Context, id string) error
	Show(ctx context.Context, id string) (*switchboard.Details, error)
	List() []*switchboard.Session
	Find(from, to string) ([]switchboard.Route, error)
	Switchboards() []*switchboard.Switchboard
}

// SDP is what the API needs to allocate and update sessions from SDP.
type SDP interface {
	Alloc(ctx context.Context, r sdprelay.Request) (*sdprelay.Result, error)
	Update(ctx context.Context, r sdprelay.Request) (*sdprelay.Result, error)
}

// Server serves the API over a listener.
type Server struct {
	sessions Sessions
	sdp      SDP
	log      *slog.Logger
	mux      *http.ServeMux
	// Observe, if set before serving, hears of every request: its route
	// pattern ("POST /v1/sessions"), an error for a status of 400 or more,
	// and how long it took (for metrics).
	Observe func(command string, err error, took time.Duration)
}

// NewServer returns a server over s and sdp (nil disables the SDP
// endpoints); a nil logger discards.
func NewServer(s Sessions, sdp SDP, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	srv := &Server{sessions: s, sdp: sdp, log: log, mux: http.NewServeMux()}
	srv.routes()
	return srv
}

// ServeHTTP makes Server an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.Observe == nil {
		s.mux.ServeHTTP(w, r)
		return
	}
	start, sw := time.Now(), &statusWriter{ResponseWriter: w, code: http.StatusOK}
	s.mux.ServeHTTP(sw, r)
	var err error
	if sw.code >= 400 {
		err = errors.New(http.StatusText(sw.code))
	}
	s.Observe(cmp.Or(r.Pattern, "unknown"), err, time.Since(start))
}

// statusWriter remembers the status code of a reply.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) { w.code = code; w.ResponseWriter.WriteHeader(code) }

// Bounds of the HTTP server: a client may hold at most MaxConns
// connections, must send a request within the read timeout and take its
// reply within the write timeout, and an idle keep-alive connection is
// closed after IdleTimeout.
const (
	MaxConns          = 256
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 10 * time.Second
	WriteTimeout      = 30 * time.Second
	IdleTimeout       = 60 * time.Second
)

// Run serves on l until ctx is done, then shuts down gracefully. It returns
// nil on cancel. At most MaxConns connections are served at once (more
// wait in the listen queue); a failed Accept is retried after a pause.
func (s *Server) Run(ctx context.Context, l net.Listener) error {
	l = netutil.LimitListener(ctlsock.Listener(l, nil, s.log), MaxConns)
	hs := &http.Server{Handler: s, ReadHeaderTimeout: ReadHeaderTimeout, ReadTimeout: ReadTimeout,
		WriteTimeout: WriteTimeout, IdleTimeout: IdleTimeout, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http api: %w", err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
		return nil
	}
}

func (s *Server) routes() {
	s.mux.HandleFunc("GET /v1/switchboards", s.switchboards)
	s.mux.HandleFunc("POST /v1/sessions", s.alloc)
	s.mux.HandleFunc("GET /v1/sessions", s.list)
	s.mux.HandleFunc("GET /v1/sessions/{id}", s.show)
	s.mux.HandleFunc("PATCH /v1/sessions/{id}", s.update)
	s.mux.HandleFunc("POST /v1/sessions/{id}/timeout", s.adjust)
	s.mux.HandleFunc("DELETE /v1/sessions/{id}", s.delete)
	s.mux.HandleFunc("GET /v1/find", s.find)
	if s.sdp != nil {
		s.mux.HandleFunc("POST /v1/sdp/alloc", s.sdpCall(s.sdp.Alloc))
		s.mux.HandleFunc("POST /v1/sdp/update", s.sdpCall(s.sdp.Update))
	}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// Gate and SwitchboardView are the JSON shapes of the configuration.
type Gate struct {
	Name    string `json:"name,omitempty"`
	Address string `json:"address"`
	Ports   string `json:"ports"`
	// Advertise is the address written into SDP instead of Address (1:1
	// NAT); sessions' gate_a and gate_b show the local Address.
	Advertise string `json:"advertise,omitempty"`
}

// gateView is g as the API shows it.
func gateView(g switchboard.Gate) Gate {
	v := Gate{Name: g.Name, Address: g.Addr.String(), Ports: g.Ports.String()}
	if g.Advertise.IsValid() {
		v.Advertise = g.Advertise.String()
	}
	return v
}

// SwitchboardView is a switchboard as the API shows it.
type SwitchboardView struct {
	Name  string `json:"name"`
	GateA Gate   `json:"gate_a"`
	GateB Gate   `json:"gate_b"`
}

func (s *Server) switchboards(w http.ResponseWriter, r *http.Request) {
	var out []SwitchboardView
	for _, sb := range s.sessions.Switchboards() {
		out = append(out, SwitchboardView{Name: sb.Name,
			GateA: gateView(sb.A), GateB: gateView(sb.B)})
	}
	reply(w, http.StatusOK, out)
}

func (s *Server) alloc(w http.ResponseWriter, r *http.Request) {
	var req switchboard.AllocRequest
	if !decode(w, r, &req) {
		return
	}
	sess, err := s.sessions.Alloc(r.Context(), req)
	s.answer(w, http.StatusCreated, sess, err)
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	reply(w, http.StatusOK, s.sessions.List())
}

func (s *Server) show(w http.ResponseWriter, r *http.Request) {
	d, err := s.sessions.Show(r.Context(), r.PathValue("id"))
	s.answer(w, http.StatusOK, d, err)
}

func (s *Server) update(w http.ResponseWriter, r *http.Request) {
	var req switchboard.UpdateRequest
	if !decode(w, r, &req) {
		return
	}
	sess, err := s.sessions.Update(r.Context(), r.PathValue("id"), req)
	s.answer(w, http.StatusOK, sess, err)
}

// TimeoutRequest is the body of adjust-timeout.
type TimeoutRequest struct {
	State switchboard.State `json:"state"`
}

func (s *Server) adjust(w http.ResponseWriter, r *http.Request) {
	var req TimeoutRequest
	if !decode(w, r, &req) {
		return
	}
	sess, err := s.sessions.AdjustTimeout(r.Context(), r.PathValue("id"), req.State)
	s.answer(w, http.StatusOK, sess, err)
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request) {
	err := s.sessions.Delete(r.Context(), r.PathValue("id"))
	s.answer(w, http.StatusOK, map[string]string{"deleted": r.PathValue("id")}, err)
}

func (s *Server) find(w http.ResponseWriter, r *http.Request) {
	routes, err := s.sessions.Find(r.URL.Query().Get("from"), r.URL.Query().Get("to"))
	s.answer(w, http.StatusOK, routes, err)
}

func (s *Server) sdpCall(fn func(context.Context, sdprelay.Request) (*sdprelay.Result, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req sdprelay.Request
		if !decode(w, r, &req) {
			return
		}
		res, err := fn(r.Context(), req)
		s.answer(w, http.StatusOK, res, err)
	}
}

// maxBody bounds request bodies (an SDP is a few kilobytes).
const maxBody = 1 << 20

// decode reads a strict JSON body into v; unknown fields are errors. A
// body of another media type is refused 415: a browser sends a cross-site
// form or text/plain POST without asking, never an application/json one.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		reply(w, http.StatusUnsupportedMediaType, ErrorBody{Error: fmt.Sprintf("request body: content type %q: want application/json", r.Header.Get("Content-Type"))})
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		reply(w, http.StatusBadRequest, ErrorBody{Error: "request body: " + err.Error()})
		return false
	}
	return true
}

// ErrorBody is the JSON of every error reply.
type ErrorBody struct {
	Error string `json:"error"`
}

func (s *Server) answer(w http.ResponseWriter, ok int, v any, err error) {
	if err == nil {
		reply(w, ok, v)
		return
	}
	code := statusOf(err)
	if code == http.StatusInternalServerError {
		s.log.Error("request failed", "err", err)
	}
	reply(w, code, ErrorBody{Error: err.Error()})
}

// statusOf maps domain errors to HTTP statuses, in one place.
func statusOf(err error) int {
	switch {
	case errors.Is(err, switchboard.ErrNotFound), errors.Is(err, switchboard.ErrUnknownSwitchboard):
		return http.StatusNotFound
	case errors.Is(err, switchboard.ErrInvalid), errors.Is(err, switchboard.ErrTooLarge):
		return http.StatusBadRequest
	case errors.Is(err, switchboard.ErrPortsExhausted), errors.Is(err, switchboard.ErrSessionLimit),
		errors.Is(err, switchboard.ErrStandby):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
