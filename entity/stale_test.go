package entity_test

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"understudy/cbor"
	"understudy/entity"
	"understudy/model"
)

// rental refers to a car that must be chosen again when it changed
// (Reselect) and a provider whose change is simply accepted (Reload).
func rental() *model.Registry {
	return model.NewRegistry().MustRegister(model.App("rental", 1,
		model.Interactive("car", model.Pick("car", "vehicles").Required().OnStale(model.Reselect)),
		model.Interactive("pay", model.Pick("provider", "providers").Required()),
		model.Interactive("done", model.Bool("ok").Required()),
	))
}

// TestStaleThroughEngine runs a session with the Store as the engine's
// resolver, changes an entity it refers to in the database, and checks that
// a backup materializing the snapshot applies the field's stale rule.
func TestStaleThroughEngine(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			cfg := b.cfg(t)
			cfg.Seed = seeds()
			primary := open(t, cfg)
			backup := open(t, cfg) // another node's Store on the same database
			ctx := t.Context()
			now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
			id := model.NewSessionID([16]byte{7, 7, 7})

			// snapshot runs a fresh session to the "done" page on the primary.
			snapshot := func(t *testing.T) []byte {
				eng := model.NewEngine(rental(), primary)
				run, err := eng.Start(ctx, model.Begin{App: "rental", Session: id, Now: now, Node: "a", Epoch: 1})
				if err != nil {
					t.Fatal(err)
				}
				for _, form := range []url.Values{{"car": {"golf"}}, {"provider": {"amex"}}} {
					if run, err = eng.Submit(ctx, run, model.Input{Seq: run.Seq(), Values: form, Now: now, Node: "a", Epoch: 1}); err != nil {
						t.Fatal(err)
					}
				}
				b, err := cbor.Marshal(run.Session())
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			materialize := func(t *testing.T, b []byte) (*model.Engine, *model.Run, error) {
				s, err := cbor.Decode(b)
				if err != nil {
					t.Fatal(err)
				}
				eng := model.NewEngine(rental(), backup)
				run, err := eng.Materialize(ctx, s)
				return eng, run, err
			}
			waitingAt := func(t *testing.T, eng *model.Engine, run *model.Run) string {
				pg, err := eng.Page(ctx, run)
				if err != nil {
					t.Fatal(err)
				}
				return pg.Step
			}

			t.Run("unchanged", func(t *testing.T) {
				eng, run, err := materialize(t, snapshot(t))
				if err != nil {
					t.Fatal(err)
				}
				if len(run.Stale()) != 0 || waitingAt(t, eng, run) != "done" {
					t.Errorf("stale %v, waiting at %s", run.Stale(), waitingAt(t, eng, run))
				}
			})

			t.Run("reload", func(t *testing.T) {
				snap := snapshot(t)
				cur, _ := primary.Resolve(ctx, model.Ref{Type: "providers", ID: "amex"})
				rec := *cur.(*model.Record)
				rec.Label = "American Express (no fee)"
				up, err := primary.Update(ctx, &rec)
				if err != nil {
					t.Fatal(err)
				}
				eng, run, err := materialize(t, snap)
				if err != nil {
					t.Fatal(err)
				}
				st := run.Stale()
				if len(st) != 1 || st[0].Action != model.Reload || st[0].Path != "pay" ||
					st[0].Old.Version != cur.EntityRef().Version || st[0].New != up.Ref {
					t.Fatalf("stale = %+v, want one reload of %s", st, up.Ref)
				}
				if at := waitingAt(t, eng, run); at != "done" {
					t.Errorf("a reload moved the user to %s", at)
				}
				if ref, _ := run.Values().Key("pay").Key("provider").Ref(); ref != up.Ref {
					t.Errorf("session refers to %s, want the reloaded %s", ref, up.Ref)
				}
			})

			t.Run("reselect", func(t *testing.T) {
				snap := snapshot(t)
				cur, _ := primary.Resolve(ctx, model.Ref{Type: "vehicles", ID: "golf"})
				rec := *cur.(*model.Record)
				rec.Fields = map[string]model.Value{"value": model.DecimalVal(2150000, 2), "group": model.IntVal(22)}
				up, err := primary.Update(ctx, &rec)
				if err != nil {
					t.Fatal(err)
				}
				eng, run, err := materialize(t, snap)
				if err != nil {
					t.Fatal(err)
				}
				st := run.Stale()
				if len(st) != 1 || st[0].Action != model.Reselect || st[0].Path != "car" || st[0].New != up.Ref {
					t.Fatalf("stale = %+v, want one reselect of %s", st, up.Ref)
				}
				if at := waitingAt(t, eng, run); at != "car" {
					t.Errorf("waiting at %s, want the car page again", at)
				}
				// A page rendered before the failover cannot be submitted now.
				old, _ := cbor.Decode(snap)
				_, err = eng.Submit(ctx, run, model.Input{Seq: old.Seq, Values: url.Values{"ok": {"on"}}, Now: now})
				if !errors.Is(err, model.ErrStaleInteraction) {
					t.Errorf("submit from the old page = %v, want ErrStaleInteraction", err)
				}
				// The user confirms the car and carries on.
				run, err = eng.Submit(ctx, run, model.Input{Seq: run.Seq(), Values: url.Values{"car": {"golf"}}, Now: now})
				if err != nil {
					t.Fatal(err)
				}
				if at := waitingAt(t, eng, run); at != "pay" {
					t.Errorf("after confirming the car, waiting at %s", at)
				}
			})

			t.Run("deleted", func(t *testing.T) {
				snap := snapshot(t)
				del := "DELETE FROM " + primary.Table() + " WHERE type = 'vehicles' AND id = 'golf'"
				if _, err := primary.DB().ExecContext(ctx, del); err != nil {
					t.Fatal(err)
				}
				if _, _, err := materialize(t, snap); !errors.Is(err, model.ErrUnresolved) {
					t.Errorf("materialize with the car deleted = %v, want ErrUnresolved", err)
				}
				var se *model.StepError
				if _, _, err := materialize(t, snap); !errors.As(err, &se) || se.Session != id {
					t.Errorf("error %v does not name the session", err)
				}
			})
		})
	}
}

// TestResolveHonoursContext checks that a call gives up with its context
// rather than waiting on the database.
func TestResolveHonoursContext(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			cfg := b.cfg(t)
			cfg.Seed = seeds()
			s := open(t, cfg)
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			if _, err := s.Resolve(ctx, model.Ref{Type: "vehicles", ID: "golf"}); !errors.Is(err, context.Canceled) {
				t.Errorf("Resolve with a cancelled context = %v", err)
			}
			if _, err := s.Choices(ctx, "vehicles"); err == nil {
				t.Error("Choices with a cancelled context succeeded")
			}
		})
	}
}

var _ model.Resolver = (*entity.Store)(nil)
