// Command signup is a complete understudy application in one file: a
// two-page signup with a repeat loop, a computed step and an application
// step, served by a node that runs as primary or backup. Run a gateway
// (go run ./cmd/gateway), then:
//
//	go run ./examples/signup -role primary -listen 127.0.0.1:8081
//	go run ./examples/signup -role backup -listen 127.0.0.1:8082
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"understudy/broker"
	"understudy/model"
	"understudy/node"
)

// Signup is the application: who you are, your interests (a loop), a
// welcome line computed from them, and another application's confirmation.
func Signup() *model.Application {
	confirm := model.App("confirm", 1,
		model.Interactive("terms", model.Bool("agree").Label("I accept the terms").Required()).Title("Almost done"))
	return model.App("signup", 1,
		model.Interactive("about",
			model.Text("name").Label("Your name").Required().MaxLen(60),
			model.Email("email").Label("Email").Required()).Title("Sign up"),
		model.Repeat("interests",
			model.Interactive("topic",
				model.Choice("topic", model.Opt("go", "Go"), model.Opt("nats", "NATS"), model.Opt("sql", "SQL")).Label("A topic you like").Required(),
				model.Bool("more").Label("Add another topic")).Title("Your interests"),
			model.While("more")).Max(3),
		model.Simple("welcome", func(ctx model.Context, st *model.State) error {
			var topics []string
			for _, t := range st.Get("interests").List() {
				topics = append(topics, t.Key("topic").Str())
			}
			st.Set("line", model.StringVal(fmt.Sprintf("Welcome %s! You like %s.", st.Get("about.name").Str(), strings.Join(topics, ", "))))
			return nil
		}),
		model.Call("confirm", confirm),
	).Title("Newsletter")
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run serves until ctx ends, then hands over to a backup.
func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("signup", flag.ContinueOnError)
	name := fs.String("node", "signup-"+fmt.Sprint(os.Getpid()), "node name, unique in the group")
	role := fs.String("role", "backup", "primary or backup")
	listen := fs.String("listen", "127.0.0.1:8081", "HTTP address")
	natsURL := fs.String("nats", broker.DefaultURL, "NATS URL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	reg := model.NewRegistry()
	if err := reg.Register(Signup()); err != nil {
		return err
	}
	n, err := node.New(node.Config{Node: *name, Role: node.Role(*role), Listen: *listen, App: "signup",
		NATS: broker.Config{URL: *natsURL}}, reg, nil) // no entities: no resolver
	if err != nil {
		return err
	}
	return n.Run(ctx)
}
