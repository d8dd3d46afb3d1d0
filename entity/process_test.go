package entity_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"understudy/entity"
	"understudy/model"
)

// helperEnv makes the test binary act as another node's process: it opens
// the SQLite file named by the variable, seeds it and updates one entity
// helperUpdates times (see TestSQLiteSharedBetweenProcesses).
const (
	helperEnv     = "UNDERSTUDY_ENTITY_HELPER_DSN"
	helperUpdates = 15
)

func TestMain(m *testing.M) {
	if dsn := os.Getenv(helperEnv); dsn != "" {
		os.Exit(helperProcess(dsn))
	}
	os.Exit(m.Run())
}

func helperProcess(dsn string) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := entity.Open(ctx, entity.Config{DSN: dsn, Seed: seeds()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Close()
	for i := range helperUpdates {
		r := car("golf", fmt.Sprintf("Golf %d/%d", os.Getpid(), i), 19000, 18)
		if _, err := s.Update(ctx, r); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if _, err := s.Choices(ctx, "vehicles"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return 0
}

// TestSQLiteSharedBetweenProcesses starts several processes that open a
// new SQLite file at the same moment (each creating the schema and seeding)
// and update one entity concurrently, as the nodes of one machine do: none
// fails, and no update is lost.
func TestSQLiteSharedBetweenProcesses(t *testing.T) {
	dsn := filepath.Join(t.TempDir(), "shared.db")
	const procs = 3
	cmds := make([]*exec.Cmd, procs)
	for i := range cmds {
		cmds[i] = exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
		cmds[i].Env = append(os.Environ(), helperEnv+"="+dsn)
		cmds[i].Stderr = os.Stderr
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Errorf("process %d: %v", i, err)
		}
	}
	s := open(t, entity.Config{DSN: dsn})
	e, err := s.Resolve(t.Context(), model.Ref{Type: "vehicles", ID: "golf"})
	if err != nil {
		t.Fatal(err)
	}
	if v := e.EntityRef().Version; v != 1+procs*helperUpdates {
		t.Errorf("version = %d after %d updates, want %d", v, procs*helperUpdates, 1+procs*helperUpdates)
	}
	ch, err := s.Choices(t.Context(), "vehicles")
	if err != nil || len(ch) != 3 {
		t.Errorf("choices = %d, %v; want the 3 seeded once", len(ch), err)
	}
}
