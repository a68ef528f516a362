package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"

	"github.com/nftrtpproxy/nftrtpproxy/calls/sdprelay"
	"github.com/nftrtpproxy/nftrtpproxy/frontend/httpapi"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
	"github.com/spf13/cobra"
)

func allocCmd(g *globals) *cobra.Command {
	var (
		sb            string
		ringing, idOK bool
		labels        = labelsFlag{}
		e             endpointFlags
		sf            sdpFlags
	)
	c := &cobra.Command{
		Use:   "alloc --switchboard NAME [-a IP:PORT] [-b IP:PORT] [--sdp FILE --from a|b]",
		Short: "Allocate a session (from peer addresses or from an SDP)",
		Args:  args(0, "alloc takes flags only: alloc --switchboard NAME [-a IP:PORT] [-b IP:PORT]"),
		RunE: func(*cobra.Command, []string) error {
			if sb == "" {
				return usageError{"alloc needs -switchboard NAME"}
			}
			if sf.file != "" {
				return allocSDP(g, sf, sb, ringing, labels)
			}
			req := switchboard.AllocRequest{Switchboard: sb, Ringing: ringing, A: e.a.endpoint(e.aRTCP), B: e.b.endpoint(e.bRTCP)}
			if len(labels) > 0 {
				req.Labels = labels
			}
			return g.call(func(ctx context.Context, c *httpapi.Client) error {
				s, err := c.Alloc(ctx, req)
				if err != nil {
					return err
				}
				if idOK {
					_, err = fmt.Fprintln(g.out, s.ID)
					return err
				}
				return g.print(s, func(w io.Writer) error { return sessionTable(w, s) })
			})
		},
	}
	f := c.Flags()
	f.StringVar(&sb, "switchboard", "", "switchboard name (required)")
	f.BoolVar(&ringing, "ringing", false, "start ringing: expire unless answered with adjust-timeout")
	f.BoolVar(&idOK, "id", false, "print only the session id")
	f.Var(labels, "label", "KEY=VALUE label stored with the session (repeatable)")
	e.register(c)
	sf.register(c)
	return c
}

func allocSDP(g *globals, sf sdpFlags, sb string, ringing bool, labels labelsFlag) error {
	r, err := sf.request(g.stdin)
	if err != nil {
		return err
	}
	r.Switchboard, r.Ringing = sb, ringing
	if len(labels) > 0 {
		r.Labels = labels
	}
	return g.call(func(ctx context.Context, c *httpapi.Client) error {
		res, err := c.AllocSDP(ctx, r)
		return sf.print(g, res, err)
	})
}

func updateCmd(g *globals) *cobra.Command {
	var (
		e  endpointFlags
		sf sdpFlags
	)
	c := &cobra.Command{
		Use:   "update ID[,ID...] [-a IP:PORT] [-b IP:PORT] [--sdp FILE --from a|b]",
		Short: "Change a session's peers (or several sessions' from an SDP)",
		Args:  args(1, "update needs a session id first: update ID [-a IP:PORT] [-b IP:PORT]"),
		RunE: func(_ *cobra.Command, a []string) error {
			if sf.file != "" {
				r, err := sf.request(g.stdin)
				if err != nil {
					return err
				}
				r.Sessions = strings.Split(a[0], ",")
				return g.call(func(ctx context.Context, c *httpapi.Client) error {
					res, err := c.UpdateSDP(ctx, r)
					return sf.print(g, res, err)
				})
			}
			req := switchboard.UpdateRequest{}
			if e.a.set || e.aRTCP.set {
				p := e.a.endpoint(e.aRTCP)
				req.A = &p
			}
			if e.b.set || e.bRTCP.set {
				p := e.b.endpoint(e.bRTCP)
				req.B = &p
			}
			return g.call(func(ctx context.Context, c *httpapi.Client) error {
				s, err := c.Update(ctx, a[0], req)
				return g.printSession(s, err)
			})
		},
	}
	e.register(c)
	sf.register(c)
	return c
}

func adjustCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "adjust-timeout ID active|learning|ringing",
		Short: "Answer a ringing session (active) or make it ring again",
		Args:  args(2, "adjust-timeout needs: ID active|learning|ringing"),
		RunE: func(_ *cobra.Command, a []string) error {
			to := switchboard.State(a[1])
			if to == "learning" {
				to = switchboard.Active
			}
			return g.call(func(ctx context.Context, c *httpapi.Client) error {
				s, err := c.AdjustTimeout(ctx, a[0], to)
				return g.printSession(s, err)
			})
		},
	}
}

func deleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a session: its gate ports stop relaying at once",
		Args:  args(1, "delete needs one session id"),
		RunE: func(_ *cobra.Command, a []string) error {
			return g.call(func(ctx context.Context, c *httpapi.Client) error {
				if err := c.Delete(ctx, a[0]); err != nil {
					return err
				}
				return g.print(map[string]string{"deleted": a[0]}, func(w io.Writer) error {
					_, err := fmt.Fprintln(w, "deleted", a[0])
					return err
				})
			})
		},
	}
}

func showCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show a session with its legs' conntrack counters",
		Args:  args(1, "show needs one session id"),
		RunE: func(_ *cobra.Command, a []string) error {
			return g.call(func(ctx context.Context, c *httpapi.Client) error {
				d, err := c.Show(ctx, a[0])
				if err != nil {
					return err
				}
				return g.print(d, func(w io.Writer) error { return detailsTable(w, d) })
			})
		},
	}
}

func listCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the sessions",
		Args:  args(0, "list takes no arguments"),
		RunE: func(*cobra.Command, []string) error {
			return g.call(func(ctx context.Context, c *httpapi.Client) error {
				l, err := c.List(ctx)
				if err != nil {
					return err
				}
				if l == nil {
					l = []*switchboard.Session{}
				}
				return g.print(l, func(w io.Writer) error { return sessionsTable(w, l) })
			})
		},
	}
}

func findCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "find FROM-GATE TO-GATE",
		Short: "Name the switchboards joining two gates (names or addresses)",
		Args:  args(2, "find needs two gates: FROM TO (names or addresses)"),
		RunE: func(_ *cobra.Command, a []string) error {
			return g.call(func(ctx context.Context, c *httpapi.Client) error {
				r, err := c.Find(ctx, a[0], a[1])
				if err != nil {
					return err
				}
				return g.print(r, func(w io.Writer) error { return routesTable(w, r) })
			})
		},
	}
}

func switchboardsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "switchboards",
		Short: "List the configured switchboards and their gates",
		Args:  args(0, "switchboards takes no arguments"),
		RunE: func(*cobra.Command, []string) error {
			return g.call(func(ctx context.Context, c *httpapi.Client) error {
				v, err := c.Switchboards(ctx)
				if err != nil {
					return err
				}
				return g.print(v, func(w io.Writer) error { return switchboardsTable(w, v) })
			})
		},
	}
}

// printSession prints the session a request answered.
func (g *globals) printSession(s *switchboard.Session, err error) error {
	if err != nil {
		return err
	}
	return g.print(s, func(w io.Writer) error { return sessionTable(w, s) })
}

// sdpFlags are the flags of alloc and update from SDP.
type sdpFlags struct {
	file, from, source   string
	replaceOrigin, noICE bool
	printSDP             bool
}

func (f *sdpFlags) register(c *cobra.Command) {
	fs := c.Flags()
	fs.StringVar(&f.file, "sdp", "", "take the streams from this SDP file (- for stdin)")
	fs.StringVar(&f.from, "from", "a", "with --sdp: the gate whose network the SDP came from (a or b)")
	fs.StringVar(&f.source, "source", "", "with --sdp: use this signalling source address instead of the SDP's")
	fs.BoolVar(&f.replaceOrigin, "replace-origin", false, "with --sdp: rewrite the o= address too")
	fs.BoolVar(&f.noICE, "remove-ice", false, "with --sdp: remove ICE attributes")
	fs.BoolVar(&f.printSDP, "print-sdp", false, "with --sdp: print only the rewritten SDP")
}

func (f *sdpFlags) request(stdin io.Reader) (sdprelay.Request, error) {
	r := sdprelay.Request{From: switchboard.Side(f.from), ReplaceOrigin: f.replaceOrigin, RemoveICE: f.noICE}
	if f.source != "" {
		var err error
		if r.Source, err = netip.ParseAddr(f.source); err != nil {
			return r, usageError{fmt.Sprintf("-source %q: want an IP address", f.source)}
		}
	}
	var b []byte
	var err error
	if f.file == "-" {
		b, err = io.ReadAll(stdin)
	} else {
		b, err = os.ReadFile(f.file)
	}
	if err != nil {
		return r, runError{err}
	}
	r.SDP = string(b)
	return r, nil
}

func (f *sdpFlags) print(g *globals, res *sdprelay.Result, err error) error {
	if err != nil {
		return err
	}
	if f.printSDP {
		_, err = io.WriteString(g.out, res.SDP)
		return err
	}
	return g.print(res, func(w io.Writer) error {
		if _, err := fmt.Fprintf(w, "sessions: %s\n\n", strings.Join(res.Sessions, " ")); err != nil {
			return err
		}
		_, err := io.WriteString(w, strings.ReplaceAll(res.SDP, "\r\n", "\n"))
		return err
	})
}
