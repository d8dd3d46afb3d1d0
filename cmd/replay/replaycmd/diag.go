package replaycmd

import (
	"context"
	"fmt"
	"io"
	"os"
)

// maxDiagInput bounds what diag reads: far above the stream's message size.
const maxDiagInput = 64 << 20

func runDiag(ctx context.Context, e *env, args []string) error {
	f := e.newFlags("diag", "[file]", "Reads one CBOR snapshot from file or stdin and writes it in CBOR diagnostic\nnotation (RFC 8949 §8) to stdout: a filter for the nats CLI, as in\n  nats stream view UNDERSTUDY_SESSIONS --subject understudy.sess.<id> --translate '"+e.cfg.Name+" diag'\nAn empty payload (a tombstone) prints a note. Bytes that are not CBOR are shown\nas far as they read, then in hex, and the command fails.")
	compact := f.Bool("compact", false, "one line instead of indented")
	pos, err := f.parse(args, 0, 1)
	if err != nil {
		return done(err)
	}
	var r io.Reader = e.stdin
	if len(pos) == 1 && pos[0] != "-" {
		file, err := os.Open(pos[0])
		if err != nil {
			return err
		}
		defer file.Close()
		r = file
	}
	data, err := io.ReadAll(io.LimitReader(r, maxDiagInput+1))
	if err != nil {
		return err
	}
	if len(data) > maxDiagInput {
		return fmt.Errorf("input over %d bytes: not a snapshot", maxDiagInput)
	}
	if len(data) == 0 {
		_, err := fmt.Fprintln(e.stdout, "(empty payload: a tombstone, or no snapshot)")
		return err
	}
	// The input is a payload as nats prints it: a sealed one is not CBOR,
	// and show -diag -key FILE opens it first.
	out, derr := diagnose(data, !*compact)
	if _, err := fmt.Fprintln(e.stdout, out); err != nil {
		return err
	}
	if derr != nil {
		return fmt.Errorf("%w: not CBOR: %w", ErrUndecodable, derr)
	}
	return nil
}
