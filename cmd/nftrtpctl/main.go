// Command nftrtpctl controls a running nftrtpproxy daemon through its native
// HTTP API and prints the daemon's JSON answers.
//
// Usage:
//
//	nftrtpctl [-api URL] alloc -switchboard NAME [-a IP:PORT] [-b IP:PORT] [-a-rtcp IP:PORT] [-b-rtcp IP:PORT] [-ringing] [-label K=V] [-id]
//	nftrtpctl [-api URL] alloc -switchboard NAME -sdp FILE -from a|b [-source IP] [-ringing] [-replace-origin] [-remove-ice] [-print-sdp]
//	nftrtpctl [-api URL] update ID [-a IP:PORT] [-b IP:PORT] [-a-rtcp IP:PORT] [-b-rtcp IP:PORT]
//	nftrtpctl [-api URL] update ID[,ID...] -sdp FILE -from a|b [-source IP] [-replace-origin] [-remove-ice] [-print-sdp]
//
// With -sdp, FILE "-" is standard input; the answer is the rewritten SDP and
// the session id of each m-line (empty for a rejected stream), or with
// -print-sdp only the SDP.
//
//	nftrtpctl [-api URL] adjust-timeout ID active|learning|ringing
//	nftrtpctl [-api URL] delete ID
//	nftrtpctl [-api URL] find FROM-GATE TO-GATE
//	nftrtpctl [-api URL] list
//	nftrtpctl [-api URL] show ID
//	nftrtpctl [-api URL] switchboards
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/httpapi"
	"github.com/nftrtpproxy/nftrtpproxy/sdprelay"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "nftrtpctl:", err)
		var u usageError
		if errors.As(err, &u) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("nftrtpctl", flag.ContinueOnError)
	api := fs.String("api", envOr("NFTRTPCTL_API", "http://"+switchboard.DefaultHTTP), "daemon API base URL (env NFTRTPCTL_API)")
	timeout := fs.Duration("timeout", 10*time.Second, "request timeout")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if fs.NArg() == 0 {
		return usageError{"missing command: alloc, update, adjust-timeout, delete, find, list, show or switchboards"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	c := &httpapi.Client{Base: *api}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	switch cmd {
	case "alloc":
		return alloc(ctx, c, rest, out)
	case "update":
		return update(ctx, c, rest, out)
	case "adjust-timeout":
		return adjust(ctx, c, rest, out)
	case "delete":
		id, err := oneID(cmd, rest)
		if err != nil {
			return err
		}
		if err := c.Delete(ctx, id); err != nil {
			return err
		}
		return print(out, map[string]string{"deleted": id}, nil)
	case "find":
		if len(rest) != 2 {
			return usageError{"find needs two gates: FROM TO (names or addresses)"}
		}
		r, err := c.Find(ctx, rest[0], rest[1])
		return print(out, r, err)
	case "list":
		l, err := c.List(ctx)
		return print(out, l, err)
	case "show":
		id, err := oneID(cmd, rest)
		if err != nil {
			return err
		}
		d, err := c.Show(ctx, id)
		return print(out, d, err)
	case "switchboards":
		v, err := c.Switchboards(ctx)
		return print(out, v, err)
	}
	return usageError{fmt.Sprintf("unknown command %q", cmd)}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func oneID(cmd string, rest []string) (string, error) {
	if len(rest) != 1 || rest[0] == "" {
		return "", usageError{cmd + " needs one session id"}
	}
	return rest[0], nil
}

func print(out io.Writer, v any, err error) error {
	if err != nil {
		return err
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// addrFlag is an optional IP:PORT flag.
type addrFlag struct {
	ap  netip.AddrPort
	set bool
}

func (f *addrFlag) String() string { return f.ap.String() }
func (f *addrFlag) Set(s string) error {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return fmt.Errorf("want IP:PORT ([IPv6]:PORT): %q", s)
	}
	f.ap, f.set = ap, true
	return nil
}

type endpointFlags struct{ a, b, aRTCP, bRTCP addrFlag }

func (e *endpointFlags) register(fs *flag.FlagSet) {
	fs.Var(&e.a, "a", "a-side peer RTP address IP:PORT")
	fs.Var(&e.b, "b", "b-side peer RTP address IP:PORT")
	fs.Var(&e.aRTCP, "a-rtcp", "a-side peer RTCP address (default: RTP port + 1)")
	fs.Var(&e.bRTCP, "b-rtcp", "b-side peer RTCP address (default: RTP port + 1)")
}

func endpoint(rtp, rtcp addrFlag) *switchboard.Endpoint {
	if !rtp.set && !rtcp.set {
		return nil
	}
	return &switchboard.Endpoint{RTP: rtp.ap, RTCP: rtcp.ap}
}

// sdpFlags are the flags of alloc and update from SDP.
type sdpFlags struct {
	file, from, source   string
	replaceOrigin, noICE bool
	printSDP             bool
}

func (f *sdpFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.file, "sdp", "", "take the streams from this SDP file (- for stdin)")
	fs.StringVar(&f.from, "from", "a", "with -sdp: the gate whose network the SDP came from (a or b)")
	fs.StringVar(&f.source, "source", "", "with -sdp: use this signalling source address instead of the SDP's")
	fs.BoolVar(&f.replaceOrigin, "replace-origin", false, "with -sdp: rewrite the o= address too")
	fs.BoolVar(&f.noICE, "remove-ice", false, "with -sdp: remove ICE attributes")
	fs.BoolVar(&f.printSDP, "print-sdp", false, "with -sdp: print only the rewritten SDP")
}

func (f *sdpFlags) request(stdin io.Reader) (sdprelay.Request, error) {
	var b []byte
	var err error
	if f.file == "-" {
		b, err = io.ReadAll(stdin)
	} else {
		b, err = os.ReadFile(f.file)
	}
	if err != nil {
		return sdprelay.Request{}, err
	}
	r := sdprelay.Request{From: sdprelay.Side(f.from), SDP: string(b), ReplaceOrigin: f.replaceOrigin, RemoveICE: f.noICE}
	if f.source != "" {
		if r.Source, err = netip.ParseAddr(f.source); err != nil {
			return r, usageError{fmt.Sprintf("-source %q: want an IP address", f.source)}
		}
	}
	return r, nil
}

func (f *sdpFlags) print(out io.Writer, res *sdprelay.Result, err error) error {
	if err == nil && f.printSDP {
		_, err = io.WriteString(out, res.SDP)
		return err
	}
	return print(out, res, err)
}

type labelsFlag map[string]string

func (l labelsFlag) String() string { return fmt.Sprint(map[string]string(l)) }
func (l labelsFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE: %q", s)
	}
	l[k] = v
	return nil
}

func alloc(ctx context.Context, c *httpapi.Client, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("alloc", flag.ContinueOnError)
	sb := fs.String("switchboard", "", "switchboard name (required)")
	ringing := fs.Bool("ringing", false, "start ringing: expire unless answered with adjust-timeout")
	idOnly := fs.Bool("id", false, "print only the session id")
	labels := labelsFlag{}
	fs.Var(labels, "label", "KEY=VALUE label stored with the session (repeatable)")
	var e endpointFlags
	e.register(fs)
	var sf sdpFlags
	sf.register(fs)
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if *sb == "" {
		return usageError{"alloc needs -switchboard NAME"}
	}
	if sf.file != "" {
		r, err := sf.request(os.Stdin)
		if err != nil {
			return err
		}
		r.Switchboard, r.Ringing = *sb, *ringing
		if len(labels) > 0 {
			r.Labels = labels
		}
		res, err := c.AllocSDP(ctx, r)
		return sf.print(out, res, err)
	}
	req := switchboard.AllocRequest{Switchboard: *sb, Ringing: *ringing}
	if len(labels) > 0 {
		req.Labels = labels
	}
	if p := endpoint(e.a, e.aRTCP); p != nil {
		req.A = *p
	}
	if p := endpoint(e.b, e.bRTCP); p != nil {
		req.B = *p
	}
	s, err := c.Alloc(ctx, req)
	if err == nil && *idOnly {
		_, err = fmt.Fprintln(out, s.ID)
		return err
	}
	return print(out, s, err)
}

func update(ctx context.Context, c *httpapi.Client, args []string, out io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return usageError{"update needs a session id first: update ID [-a IP:PORT] [-b IP:PORT]"}
	}
	id := args[0]
	fs := flag.NewFlagSet("update", flag.ContinueOnError)
	var e endpointFlags
	e.register(fs)
	var sf sdpFlags
	sf.register(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return usageError{err.Error()}
	}
	if sf.file != "" {
		r, err := sf.request(os.Stdin)
		if err != nil {
			return err
		}
		r.Sessions = strings.Split(id, ",")
		res, err := c.UpdateSDP(ctx, r)
		return sf.print(out, res, err)
	}
	s, err := c.Update(ctx, id, switchboard.UpdateRequest{A: endpoint(e.a, e.aRTCP), B: endpoint(e.b, e.bRTCP)})
	return print(out, s, err)
}

func adjust(ctx context.Context, c *httpapi.Client, args []string, out io.Writer) error {
	if len(args) != 2 {
		return usageError{"adjust-timeout needs: ID active|learning|ringing"}
	}
	to := switchboard.State(args[1])
	if to == "learning" {
		to = switchboard.Active
	}
	s, err := c.AdjustTimeout(ctx, args[0], to)
	return print(out, s, err)
}
