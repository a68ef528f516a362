package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/nftrtpproxy/nftrtpproxy/calls/sdprelay"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// Client calls a running daemon's API. The zero HTTP client means
// http.DefaultClient.
type Client struct {
	// Base is the API's address, e.g. "http://127.0.0.1:7780".
	Base string
	HTTP *http.Client
}

// StatusError is an error reply of the daemon.
type StatusError struct {
	Code    int
	Message string
}

func (e *StatusError) Error() string { return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Code) }

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.Base, "/")+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("daemon at %s: %w", c.Base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("daemon at %s: %w", c.Base, err)
	}
	if resp.StatusCode >= 300 {
		var e ErrorBody
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return &StatusError{Code: resp.StatusCode, Message: e.Error}
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

// Alloc creates a session.
func (c *Client) Alloc(ctx context.Context, r switchboard.AllocRequest) (*switchboard.Session, error) {
	var s switchboard.Session
	return &s, c.do(ctx, http.MethodPost, "/v1/sessions", r, &s)
}

// Update changes a session's peers.
func (c *Client) Update(ctx context.Context, id string, r switchboard.UpdateRequest) (*switchboard.Session, error) {
	var s switchboard.Session
	return &s, c.do(ctx, http.MethodPatch, "/v1/sessions/"+url.PathEscape(id), r, &s)
}

// AdjustTimeout switches a session between ringing and active.
func (c *Client) AdjustTimeout(ctx context.Context, id string, to switchboard.State) (*switchboard.Session, error) {
	var s switchboard.Session
	return &s, c.do(ctx, http.MethodPost, "/v1/sessions/"+url.PathEscape(id)+"/timeout", TimeoutRequest{State: to}, &s)
}

// Delete removes a session.
func (c *Client) Delete(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/sessions/"+url.PathEscape(id), nil, nil)
}

// Show returns a session with its legs and counters.
func (c *Client) Show(ctx context.Context, id string) (*switchboard.Details, error) {
	var d switchboard.Details
	return &d, c.do(ctx, http.MethodGet, "/v1/sessions/"+url.PathEscape(id), nil, &d)
}

// List returns every session.
func (c *Client) List(ctx context.Context) ([]*switchboard.Session, error) {
	var s []*switchboard.Session
	err := c.do(ctx, http.MethodGet, "/v1/sessions", nil, &s)
	return s, err
}

// Find returns the switchboards joining two gates.
func (c *Client) Find(ctx context.Context, from, to string) ([]switchboard.Route, error) {
	var r []switchboard.Route
	q := url.Values{"from": {from}, "to": {to}}
	err := c.do(ctx, http.MethodGet, "/v1/find?"+q.Encode(), nil, &r)
	return r, err
}

// Switchboards returns the configured switchboards.
func (c *Client) Switchboards(ctx context.Context) ([]SwitchboardView, error) {
	var v []SwitchboardView
	err := c.do(ctx, http.MethodGet, "/v1/switchboards", nil, &v)
	return v, err
}

// AllocSDP allocates one session per active m-line of an SDP offer.
func (c *Client) AllocSDP(ctx context.Context, r sdprelay.Request) (*sdprelay.Result, error) {
	var res sdprelay.Result
	return &res, c.do(ctx, http.MethodPost, "/v1/sdp/alloc", r, &res)
}

// UpdateSDP applies a re-INVITE or answer to the sessions of r.Sessions.
func (c *Client) UpdateSDP(ctx context.Context, r sdprelay.Request) (*sdprelay.Result, error) {
	var res sdprelay.Result
	return &res, c.do(ctx, http.MethodPost, "/v1/sdp/update", r, &res)
}

// Replication returns a router pair's replication status (GET
// /v1/replication, served only when the daemon has a [replication]
// section).
func (c *Client) Replication(ctx context.Context) (json.RawMessage, error) {
	var v json.RawMessage
	err := c.do(ctx, http.MethodGet, "/v1/replication", nil, &v)
	return v, err
}
