// Command nftrtpctl controls a running nftrtpproxy daemon through its native
// HTTP API. It prints tables for people and, with -o json, the daemon's JSON
// answers for scripts.
//
// Usage:
//
//	nftrtpctl [--api ADDR] [-o table|json] COMMAND [ARGS]
//
// Commands: alloc, update, adjust-timeout, delete, terminate, show, list,
// count, totals, find, switchboards, replication. `nftrtpctl help COMMAND` or
// `nftrtpctl COMMAND -h` describes one. ADDR is host:port or a URL; it
// defaults to $NFTRTPCTL_API, then 127.0.0.1:7780. Flags may be written
// with one dash or two (-switchboard or --switchboard), as older versions
// took them.
//
// Exit status: 0 on success, 1 when the daemon refused or could not be
// reached, 2 on a usage error.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/frontend/httpapi"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// defaultAPI is where the daemon's native API listens unless configured.
const defaultAPI = "127.0.0.1:7780"

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "nftrtpctl:", err)
		var r runError
		if errors.As(err, &r) {
			os.Exit(1)
		}
		os.Exit(2)
	}
}

// runError is a failure of a well-formed command (the daemon refused, could
// not be reached, or a file could not be read): exit status 1. Every other
// error run returns is a usage error: exit status 2.
type runError struct{ err error }

func (r runError) Error() string { return r.err.Error() }
func (r runError) Unwrap() error { return r.err }

// usageError is a command line that cannot be run as written.
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

// globals are the flags every command takes.
type globals struct {
	api     string
	timeout time.Duration
	output  string
	stdin   io.Reader
	out     io.Writer
}

// client is the API client for the --api address.
func (g *globals) client() *httpapi.Client {
	base := g.api
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &httpapi.Client{Base: base}
}

// call runs f with the request timeout, wrapping its error as a runError.
func (g *globals) call(f func(ctx context.Context, c *httpapi.Client) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
	defer cancel()
	var u usageError
	if err := f(ctx, g.client()); err != nil && !errors.As(err, &u) {
		return runError{err}
	} else if err != nil {
		return err
	}
	return nil
}

// printer prints v as JSON with -o json and with table otherwise.
func (g *globals) print(v any, table func(w io.Writer) error) error {
	if g.output == "json" {
		return printJSON(g.out, v)
	}
	return table(g.out)
}

// run executes one nftrtpctl command line.
func run(args []string, stdin io.Reader, out, errOut io.Writer) error {
	g := &globals{stdin: stdin, out: out}
	root := newRoot(g)
	root.SetArgs(longFlags(root, args))
	root.SetOut(out)
	root.SetErr(errOut)
	return root.Execute()
}

func newRoot(g *globals) *cobra.Command {
	api := os.Getenv("NFTRTPCTL_API")
	if api == "" {
		api = defaultAPI
	}
	root := &cobra.Command{
		Use:   "nftrtpctl",
		Short: "Control a running nftrtpproxy through its native HTTP API",
		Long: `nftrtpctl controls a running nftrtpproxy daemon through its native HTTP API.
It prints tables for people and, with -o json, the daemon's JSON for scripts.
Exit status: 0 on success, 1 when the daemon refused or could not be reached,
2 on a usage error.`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
		RunE: func(*cobra.Command, []string) error {
			return usageError{"missing command; nftrtpctl -h lists them"}
		},
		PersistentPreRunE: func(*cobra.Command, []string) error {
			if g.output != "table" && g.output != "json" {
				return usageError{fmt.Sprintf("-o %q: want table or json", g.output)}
			}
			return nil
		},
	}
	f := root.PersistentFlags()
	f.StringVar(&g.api, "api", api, "daemon API address, host:port or URL (env NFTRTPCTL_API)")
	f.DurationVar(&g.timeout, "timeout", 10*time.Second, "request timeout")
	f.StringVarP(&g.output, "output", "o", "table", "output format: table or json")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err.Error()} })
	root.AddCommand(allocCmd(g), updateCmd(g), adjustCmd(g), deleteCmd(g), terminateCmd(g),
		showCmd(g), listCmd(g), countCmd(g), totalsCmd(g), findCmd(g), switchboardsCmd(g), replicationCmd(g))
	return root
}

// longFlags rewrites the one-dash long flags of earlier versions
// (-switchboard, -a-rtcp=...) to the two dashes pflag reads; one-letter
// flags and values are left alone.
func longFlags(root *cobra.Command, args []string) []string {
	names := map[string]bool{}
	var collect func(c *cobra.Command)
	collect = func(c *cobra.Command) {
		c.LocalFlags().VisitAll(func(f *pflag.Flag) { names[f.Name] = true })
		c.PersistentFlags().VisitAll(func(f *pflag.Flag) { names[f.Name] = true })
		for _, sub := range c.Commands() {
			collect(sub)
		}
	}
	collect(root)
	out := make([]string, len(args))
	for i, a := range args {
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "-"), "=")
		if strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && len(name) > 1 && names[name] {
			a = "-" + a
		}
		out[i] = a
	}
	return out
}

// args checks a command's positional arguments, with msg as the usage error.
func args(n int, msg string) cobra.PositionalArgs {
	return func(_ *cobra.Command, a []string) error {
		if len(a) != n || (n > 0 && a[0] == "") {
			return usageError{msg}
		}
		return nil
	}
}
