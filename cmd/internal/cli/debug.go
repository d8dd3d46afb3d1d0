package cli

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// Debug registers -debug-listen and returns a function that, once flags
// are parsed, gives the actor serving Go's profiles (net/http/pprof) on
// that address, or nil when it is empty (the default). The profiles get a
// listener of their own, never the public one: they show the process's
// insides and cost CPU while they run. Bind it to localhost or an
// operators' network.
func Debug(fs *FlagSet) func(log *slog.Logger) Actor {
	addr := fs.String("debug-listen", "", "serve Go's profiles (/debug/pprof/) on this address, e.g. 127.0.0.1:6060; never a public one (default: off)")
	return func(log *slog.Logger) Actor {
		if *addr == "" {
			return nil
		}
		return func(ctx context.Context) error {
			mux := http.NewServeMux()
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
			ln, err := net.Listen("tcp", *addr)
			if err != nil {
				return err
			}
			srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
			log.Info("profiles served", "url", "http://"+ln.Addr().String()+"/debug/pprof/")
			errc := make(chan error, 1)
			go func() { errc <- srv.Serve(ln) }()
			select {
			case err := <-errc:
				return err
			case <-ctx.Done():
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				srv.Shutdown(sctx)
				if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
					return err
				}
				return nil
			}
		}
	}
}
