// Package e2e tests understudy the way it runs: real processes (a gateway
// with embedded NATS, a primary, backups), real HTTP, and kill -9. The
// tests are behind the e2e build tag:
//
//	go test -tags e2e ./test/e2e                      # the short version CI runs
//	go test -tags e2e ./test/e2e -e2e.kills=20 -v     # failover-time figures
package e2e
