// Command gateway is understudy's reverse proxy: it routes every session to
// the group's primary, detects a dead primary, signals the failover and
// retries the interrupted request on the new primary. In the local
// deployment it also embeds the NATS server, since it is the process that
// outlives node failures; with -nats it uses an external NATS.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"understudy/broker"
	"understudy/cmd/internal/cli"
	"understudy/gateway"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "gateway:", err)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("gateway", "Routes a replication group's traffic to its primary and carries requests across failovers.\nWithout -nats it runs an embedded NATS server (the local deployment).", stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "HTTP listen address")
	tlsCert := fs.String("tls-cert", "", "serve HTTPS with this certificate file")
	tlsKey := fs.String("tls-key", "", "key file of -tls-cert")
	natsCfg := cli.NATS(fs, "")
	natsListen := fs.String("nats-listen", "127.0.0.1:4222", "embedded NATS: listen address (loopback by default)")
	natsConfig := fs.String("nats-server-config", "", "embedded NATS: a nats-server configuration file with users and permissions (deploy/nats/permissions.conf); -nats-user and -nats-password are then the gateway's own user")
	listenCert := fs.String("nats-listen-cert", "", "embedded NATS: serve clients over TLS with this certificate file (it must name the -nats-listen host)")
	listenKey := fs.String("nats-listen-key", "", "embedded NATS: key file of -nats-listen-cert")
	listenCA := fs.String("nats-listen-ca", "", "embedded NATS: require client certificates signed by this CA file (mutual TLS)")
	dataDir := fs.String("data", "understudy-data", "embedded NATS: data directory for JetStream file storage")
	fsync := fs.String("nats-fsync", "always", "embedded NATS: fsync on every write (always) or at an interval (e.g. 100ms)")
	maxStore := fs.Int64("nats-max-store", 1<<30, "embedded NATS: JetStream file store limit in bytes")
	prefix := fs.String("prefix", broker.DefaultPrefix, "subject and stream prefix")
	groupName := fs.String("group", "main", "replication group")
	lease := fs.Duration("lease", 300*time.Millisecond, "the group's lease (as the nodes run it)")
	maxBody := fs.Int64("max-body", gateway.DefaultMaxBody, "largest request body buffered for a retry")
	wait := fs.Duration("wait", gateway.DefaultWaitFor, "how long a request waits for a failover")
	busyFor := fs.Duration("busy-for", gateway.DefaultBusyFor, "how long a request waits for a place (at the gateway, or turned away by a busy primary) before the gateway answers 503 busy (the load it cannot carry is shed)")
	maxInFlight := fs.Int("max-in-flight", gateway.DefaultMaxInFlight, "requests sent to the primary at once, at most (fewer while it answers busy); the others wait for a place, up to -busy-for")
	replicas := fs.Int("replicas", 1, "replicas of the stream and bucket it creates (3 on a NATS cluster)")
	logger := cli.Logging(fs, stdout)
	debug := cli.Debug(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	log, err := logger()
	if err != nil {
		return err
	}
	subjects, err := broker.NewSubjects(*prefix)
	if err != nil {
		return err
	}

	var actors []cli.Actor
	embedded := natsCfg.URL == ""
	var emb *broker.Embedded
	if !embedded && (*natsConfig != "" || *listenCert != "" || *listenKey != "" || *listenCA != "") {
		return fmt.Errorf("-nats-server-config and -nats-listen-* configure the embedded NATS server, which -nats turns off")
	}
	if embedded {
		host, port, err := splitHostPort(*natsListen)
		if err != nil {
			return fmt.Errorf("-nats-listen: %w", err)
		}
		ecfg := broker.EmbeddedConfig{ServerName: "understudy-gateway", Host: host, Port: port, StoreDir: *dataDir,
			JetStreamMaxStore: *maxStore, Logger: log, ConfigFile: *natsConfig,
			TLS: broker.ServerTLS{CertFile: *listenCert, KeyFile: *listenKey, CAFile: *listenCA, VerifyClients: *listenCA != ""}}
		if *natsConfig == "" {
			// Without a file of users, the gateway's credentials are the
			// server's only ones: every node and tool uses them too.
			ecfg.User, ecfg.Password, ecfg.Token = natsCfg.User, natsCfg.Password, natsCfg.Token
		}
		if *listenCert != "" && natsCfg.TLS.CAFile == "" {
			// The gateway's own client trusts the certificate it serves.
			natsCfg.TLS.CAFile = *listenCert
		}
		if *fsync != "always" {
			d, err := time.ParseDuration(*fsync)
			if err != nil {
				return fmt.Errorf("-nats-fsync %q: always or a duration", *fsync)
			}
			ecfg.SyncInterval = d
		}
		emb = broker.NewEmbedded(ecfg)
		if err := emb.Start(ctx); err != nil {
			return err
		}
		defer emb.Close(context.Background())
		natsCfg.URL = emb.ClientURL()
	}
	natsCfg.Name, natsCfg.Logger = "gateway", log

	actors = append(actors, func(ctx context.Context) error {
		nc, err := broker.Connect(ctx, *natsCfg)
		if err != nil {
			return err
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		_, kv, err := broker.Provision(ctx, js, broker.StreamConfig{Subjects: subjects, Replicas: *replicas, Logger: log},
			broker.BucketConfig{Subjects: subjects, Replicas: *replicas, Logger: log}, log)
		if err != nil {
			return err
		}
		if emb != nil {
			// Nodes connected to the embedded server may replace a crashed
			// primary without waiting out its lease: it says it is
			// standalone (DESIGN.md, "Fast path for a crash").
			if _, err := broker.AnswerStandalone(nc, subjects, emb); err != nil {
				return err
			}
		}
		gw, err := gateway.New(nc, kv, gateway.Config{Subjects: subjects, Group: *groupName, Lease: *lease, MaxBody: *maxBody, WaitFor: *wait, BusyFor: *busyFor, MaxInFlight: *maxInFlight, Logger: log})
		if err != nil {
			return err
		}
		if err := gw.Start(ctx); err != nil {
			return err
		}
		defer gw.Close()
		srv := &http.Server{Addr: *listen, Handler: gw, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
			WriteTimeout: *wait + time.Minute, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 32 << 10,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
		ln, err := net.Listen("tcp", *listen)
		if err != nil {
			return err
		}
		log.Info("gateway listening", "url", scheme(*tlsCert)+ln.Addr().String(), "nats", redactURL(natsCfg.URL), "embedded_nats", embedded, "group", *groupName)
		errc := make(chan error, 1)
		go func() {
			if *tlsCert != "" {
				srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
				errc <- srv.ServeTLS(ln, *tlsCert, *tlsKey)
			} else {
				errc <- srv.Serve(ln)
			}
		}()
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
		}
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	return cli.Run(ctx, log, append(actors, debug(log))...)
}

func scheme(cert string) string {
	if cert != "" {
		return "https://"
	}
	return "http://"
}

func redactURL(u string) string {
	if i := strings.Index(u, "@"); i >= 0 {
		if j := strings.Index(u, "://"); j >= 0 && j < i {
			return u[:j+3] + "…" + u[i:]
		}
	}
	return u
}

func splitHostPort(hp string) (string, int, error) {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	var p int
	if _, err := fmt.Sscan(port, &p); err != nil {
		return "", 0, fmt.Errorf("port %q", port)
	}
	return host, p, nil
}
