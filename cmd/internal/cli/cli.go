// Package cli holds what understudy's commands share: flags that fall back
// to environment variables, NATS connection flags, logging, and the
// process lifecycle as an oklog/run group. Flags live only under cmd/.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"syscall"

	"github.com/oklog/run"

	"understudy/broker"
)

// EnvPrefix starts the environment variable of every flag: -nats-url is
// UNDERSTUDY_NATS_URL.
const EnvPrefix = "UNDERSTUDY_"

// Env returns the environment variable of a flag.
func Env(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// FlagSet is a flag.FlagSet whose flags take their default from the
// environment, and whose usage lists both.
type FlagSet struct {
	*flag.FlagSet
	about string
}

// NewFlagSet returns a flag set for a command; about is the usage text's
// first paragraph.
func NewFlagSet(name, about string, out io.Writer) *FlagSet {
	fs := &FlagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), about: about}
	fs.SetOutput(out)
	fs.Usage = fs.usage
	return fs
}

func (fs *FlagSet) usage() {
	out := fs.Output()
	fmt.Fprintf(out, "Usage: %s [flags]\n\n%s\n\nFlags (each also read from the environment variable shown):\n", fs.Name(), fs.about)
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	sort.Strings(names)
	for _, n := range names {
		f := fs.Lookup(n)
		kind, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(out, "  -%s %s\n    \t%s", f.Name, kind, usage)
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			fmt.Fprintf(out, " (default %s)", f.DefValue)
		}
		fmt.Fprintf(out, "\n    \t$%s\n", Env(f.Name))
	}
}

// Parse parses args; a flag not given takes its environment variable, if
// set.
func (fs *FlagSet) Parse(args []string) error {
	if err := fs.FlagSet.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		if v, ok := os.LookupEnv(Env(f.Name)); ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("$%s: %w", Env(f.Name), e)
			}
		}
	})
	return err
}

// NATS registers the flags of a NATS connection and returns the config
// they fill.
func NATS(fs *FlagSet, defaultURL string) *broker.Config {
	c := &broker.Config{}
	fs.StringVar(&c.URL, "nats", defaultURL, "NATS server URL, or a comma-separated list of a cluster's servers")
	fs.StringVar(&c.User, "nats-user", "", "NATS user name")
	fs.StringVar(&c.Password, "nats-password", "", "NATS password")
	fs.StringVar(&c.Token, "nats-token", "", "NATS token")
	fs.StringVar(&c.NKeySeedFile, "nats-nkey", "", "NATS nkey seed file")
	fs.StringVar(&c.CredsFile, "nats-creds", "", "NATS credentials file (user JWT and nkey seed)")
	fs.StringVar(&c.TLS.CAFile, "nats-ca", "", "CA certificate file to verify the NATS server")
	fs.StringVar(&c.TLS.CertFile, "nats-cert", "", "client certificate file for NATS (mutual TLS)")
	fs.StringVar(&c.TLS.KeyFile, "nats-key", "", "client key file for NATS (mutual TLS)")
	return c
}

// Logging registers -log-level and -log-format and returns a function
// that builds the logger once flags are parsed.
func Logging(fs *FlagSet, out io.Writer) func() (*slog.Logger, error) {
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	format := fs.String("log-format", "text", "log format: text or json")
	return func() (*slog.Logger, error) {
		var l slog.Level
		if err := l.UnmarshalText([]byte(*level)); err != nil {
			return nil, fmt.Errorf("-log-level %q: %w", *level, err)
		}
		opts := &slog.HandlerOptions{Level: l}
		switch *format {
		case "text":
			return slog.New(slog.NewTextHandler(out, opts)), nil
		case "json":
			return slog.New(slog.NewJSONHandler(out, opts)), nil
		}
		return nil, fmt.Errorf("-log-format %q: want text or json", *format)
	}
}

// Actor is one part of a process: it runs until ctx ends or it fails.
type Actor func(ctx context.Context) error

// Run runs the actors as an oklog/run group, with one more that stops the
// group on SIGINT or SIGTERM (a graceful stop) or when ctx ends. The first
// actor to return stops the others; Run returns its error, or nil for a
// signal. A nil actor (a part turned off by its flag) is skipped.
func Run(ctx context.Context, log *slog.Logger, actors ...Actor) error {
	var g run.Group
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g.Add(run.SignalHandler(ctx, os.Interrupt, syscall.SIGTERM))
	for _, a := range actors {
		if a == nil {
			continue
		}
		actx, acancel := context.WithCancel(ctx)
		g.Add(func() error { return a(actx) }, func(error) { acancel() })
	}
	err := g.Run()
	if errors.Is(err, run.ErrSignal) {
		log.Info("stopping", "reason", err.Error())
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
