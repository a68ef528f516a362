package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"

	"github.com/nftrtpproxy/nftrtpproxy/frontend/httpapi"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
)

// showWorkers bounds the show requests totals has in flight.
const showWorkers = 8

// Count is the answer of count: sessions per switchboard and state.
type Count struct {
	Sessions     int                       `json:"sessions"`
	Switchboards map[string]map[string]int `json:"switchboards"`
}

func countCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "count",
		Short: "Count the sessions per switchboard and state",
		Args:  args(0, "count takes no arguments"),
		RunE: func(*cobra.Command, []string) error {
			return g.call(func(ctx context.Context, c *httpapi.Client) error {
				l, err := c.List(ctx)
				if err != nil {
					return err
				}
				n := count(l)
				return g.print(n, func(w io.Writer) error { return countTable(w, n) })
			})
		},
	}
}

func count(l []*switchboard.Session) Count {
	n := Count{Sessions: len(l), Switchboards: map[string]map[string]int{}}
	for _, s := range l {
		if n.Switchboards[s.Switchboard] == nil {
			n.Switchboards[s.Switchboard] = map[string]int{}
		}
		n.Switchboards[s.Switchboard][string(s.State)]++
	}
	return n
}

// Totals is the answer of totals: the packets and bytes that entered the
// gates of the live sessions, per switchboard and in all.
type Totals struct {
	Total        Traffic            `json:"total"`
	Switchboards map[string]Traffic `json:"switchboards"`
}

// Traffic is what the sessions of one switchboard carried.
type Traffic struct {
	Sessions int    `json:"sessions"`
	Packets  uint64 `json:"packets"`
	Bytes    uint64 `json:"bytes"`
}

func (t *Traffic) add(d *switchboard.Details) {
	t.Sessions++
	for _, l := range d.Legs {
		t.Packets += l.Packets
		t.Bytes += l.Bytes
	}
}

func totalsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "totals",
		Short: "Sum the packets and bytes of the live sessions per switchboard",
		Long: `totals sums the conntrack counters of every live session's legs, per
switchboard and in all. It asks the daemon for each session (show), so it
takes a while on a busy relay; sessions that end meanwhile are left out.`,
		Args: args(0, "totals takes no arguments"),
		RunE: func(*cobra.Command, []string) error {
			return g.call(func(ctx context.Context, c *httpapi.Client) error {
				t, err := totals(ctx, c)
				if err != nil {
					return err
				}
				return g.print(t, func(w io.Writer) error { return totalsTable(w, t) })
			})
		},
	}
}

func totals(ctx context.Context, c *httpapi.Client) (*Totals, error) {
	l, err := c.List(ctx)
	if err != nil {
		return nil, err
	}
	details := make([]*switchboard.Details, len(l))
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(showWorkers)
	for i, s := range l {
		eg.Go(func() error {
			d, err := c.Show(ctx, s.ID)
			if notFound(err) {
				return nil // ended since the list
			}
			details[i] = d
			return err
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	t := &Totals{Switchboards: map[string]Traffic{}}
	for _, d := range details {
		if d == nil {
			continue
		}
		sb := t.Switchboards[d.Switchboard]
		sb.add(d)
		t.Switchboards[d.Switchboard] = sb
		t.Total.add(d)
	}
	return t, nil
}

func notFound(err error) bool {
	var se *httpapi.StatusError
	return errors.As(err, &se) && se.Code == http.StatusNotFound
}

// callIDLabel says whether a session label holds a SIP Call-ID: "call-id"
// (the ng front end and the HTTP API's convention) or a front end's
// "<protocol>-call-id" (lrkproxy, mediaproxy).
func callIDLabel(key string) bool {
	return key == "call-id" || strings.HasSuffix(key, "-call-id")
}

func terminateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "terminate CALL-ID",
		Short: "Delete every session whose labels carry the Call-ID",
		Long: `terminate deletes every session with a label call-id (or a front end's
<protocol>-call-id) equal to CALL-ID: the call's media stops at once.
It fails when no session carries the Call-ID.`,
		Args: args(1, "terminate needs one Call-ID"),
		RunE: func(_ *cobra.Command, a []string) error {
			return g.call(func(ctx context.Context, c *httpapi.Client) error {
				ids, err := terminate(ctx, c, a[0])
				if err != nil {
					return err
				}
				return g.print(map[string][]string{"deleted": ids}, func(w io.Writer) error {
					_, err := fmt.Fprintf(w, "deleted %d sessions of call %q: %s\n", len(ids), a[0], strings.Join(ids, " "))
					return err
				})
			})
		},
	}
}

// terminate deletes the sessions of a call and returns their ids, sorted.
func terminate(ctx context.Context, c *httpapi.Client, callID string) ([]string, error) {
	l, err := c.List(ctx)
	if err != nil {
		return nil, err
	}
	ids := []string{}
	for _, s := range l {
		for k, v := range s.Labels {
			if callIDLabel(k) && v == callID {
				ids = append(ids, s.ID)
				break
			}
		}
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("call %q: no session carries the Call-ID", callID)
	}
	sort.Strings(ids)
	deleted := ids[:0]
	for _, id := range ids {
		if err := c.Delete(ctx, id); notFound(err) {
			continue // ended meanwhile
		} else if err != nil {
			return nil, fmt.Errorf("call %q: deleted %v, then: %w", callID, deleted, err)
		}
		deleted = append(deleted, id)
	}
	return deleted, nil
}
