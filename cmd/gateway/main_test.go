package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"understudy/broker"
	"understudy/broker/brokertest"
	"understudy/internal/syncbuf"
)

// gatewayRun is the command running in the test.
type gatewayRun struct {
	url  string // its HTTP(S) base URL
	nats string // its embedded server's client URL
	out  *syncbuf.Buffer
}

var listening = regexp.MustCompile(`msg="gateway listening" url=(\S+) nats=(\S+)`)

// startGateway runs the command with args (and an embedded NATS on a free
// port with its data in a temporary directory) until the test ends, and
// waits until it listens.
func startGateway(t *testing.T, args ...string) *gatewayRun {
	t.Helper()
	args = append([]string{"-listen", "127.0.0.1:0", "-nats-listen", "127.0.0.1:-1", "-data", t.TempDir(), "-nats-fsync", "1s"}, args...)
	out := &syncbuf.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, out, out) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway: %v", err)
		}
	})
	var m []string
	brokertest.WaitFor(t, 20*time.Second, "the gateway to listen", func() bool {
		select {
		case err := <-done:
			t.Fatalf("gateway stopped: %v\n%s", err, out.String())
		default:
		}
		m = listening.FindStringSubmatch(out.String())
		return m != nil
	})
	return &gatewayRun{url: m[1], nats: m[2], out: out}
}

// TestGatewayTLS: with -tls-cert and -tls-key the gateway serves HTTPS
// only, TLS 1.2 at least.
func TestGatewayTLS(t *testing.T) {
	pki := newTestPKI(t)
	g := startGateway(t, "-tls-cert", pki.serverCert, "-tls-key", pki.serverKey)
	if !strings.HasPrefix(g.url, "https://") {
		t.Fatalf("url %s", g.url)
	}
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(pki.caCert)
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get(g.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("https: %d %+v", resp.StatusCode, resp.TLS)
	}
	// Plain HTTP gets no page; TLS 1.1 gets no handshake.
	plain := strings.Replace(g.url, "https://", "http://", 1)
	if resp, err := http.Get(plain + "/healthz"); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatalf("plain http answered: %s", body)
		}
	}
	old := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}}}
	if _, err := old.Get(g.url + "/healthz"); err == nil {
		t.Fatal("TLS 1.1 accepted")
	}
}

// TestEmbeddedNATSWithUsersAndTLS: the embedded server reads the users
// and permissions file and serves its clients over TLS; the gateway
// connects to it as its own user (trusting the certificate it serves),
// a node's user connects with the CA, and a client without TLS or without
// a user is refused.
func TestEmbeddedNATSWithUsersAndTLS(t *testing.T) {
	pki := newTestPKI(t)
	for _, u := range []string{"node", "gateway", "replay", "operator"} {
		t.Setenv("UNDERSTUDY_"+strings.ToUpper(u)+"_PASSWORD", u+"-secret")
	}
	g := startGateway(t, "-nats-server-config", "../../deploy/nats/permissions.conf",
		"-nats-user", "gateway", "-nats-password", "gateway-secret",
		"-nats-listen-cert", pki.serverCert, "-nats-listen-key", pki.serverKey)
	if !strings.HasPrefix(g.nats, "tls://") {
		t.Fatalf("embedded NATS at %s, want tls://", g.nats)
	}
	if strings.Contains(g.out.String(), "gateway-secret") {
		t.Fatal("the gateway logged its password")
	}
	connect := func(cfg broker.Config) error {
		cfg.URL = g.nats
		cfg.Logger = brokertest.Logger(t)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		nc, err := broker.Connect(ctx, cfg)
		if err == nil {
			defer nc.Close()
			if !nc.TLSRequired() {
				return errors.New("not TLS")
			}
		}
		return err
	}
	tlsCA := broker.ClientTLS{CAFile: pki.caCert}
	if err := connect(broker.Config{User: "node", Password: "node-secret", TLS: tlsCA}); err != nil {
		t.Fatalf("node over TLS: %v", err)
	}
	for name, cfg := range map[string]broker.Config{
		"no TLS":         {User: "node", Password: "node-secret", URL: strings.Replace(g.nats, "tls://", "nats://", 1)},
		"no user":        {TLS: tlsCA},
		"wrong password": {User: "node", Password: "guess", TLS: tlsCA},
	} {
		if name == "no TLS" {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			cfg.Logger = brokertest.Logger(t)
			nc, err := broker.Connect(ctx, cfg)
			cancel()
			if err == nil {
				nc.Close()
				t.Errorf("%s: connected", name)
			}
			continue
		}
		if err := connect(cfg); err == nil {
			t.Errorf("%s: connected", name)
		}
	}
	// Flags for the embedded server make no sense with an external NATS.
	if err := run(context.Background(), []string{"-nats", "nats://127.0.0.1:1", "-nats-listen-cert", pki.serverCert}, io.Discard, io.Discard); err == nil {
		t.Error("-nats-listen-cert with -nats accepted")
	}
}

// TestSlowClients: clients that trickle their headers hold a connection
// each and nothing more: the gateway answers others at once, and drops the
// slow ones after its read header timeout.
func TestSlowClients(t *testing.T) {
	g := startGateway(t)
	host := strings.TrimPrefix(g.url, "http://")
	var conns []net.Conn
	closed := make(chan struct{}, 20)
	for range 20 {
		conn, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
		go func() {
			io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: gw\r\n")
			for {
				conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				var b [256]byte
				_, err := conn.Read(b[:])
				if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
					closed <- struct{}{}
					return
				}
				if _, err := conn.Write([]byte("X")); err != nil {
					closed <- struct{}{}
					return
				}
			}
		}()
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range 5 {
		start := time.Now()
		resp, err := http.Get(g.url + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if took := time.Since(start); resp.StatusCode != http.StatusOK || took > 2*time.Second {
			t.Fatalf("healthz beside slow clients: %d in %v", resp.StatusCode, took)
		}
	}
	deadline := time.After(15 * time.Second)
	for range conns {
		select {
		case <-closed:
		case <-deadline:
			t.Fatal("the gateway kept slow clients past its read header timeout")
		}
	}
}

type testPKI struct {
	caCert, serverCert, serverKey string
}

// newTestPKI writes a CA and a server certificate for 127.0.0.1 signed by
// it, as PEM files in a temporary directory.
func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "understudy test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "server"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(k)
	write := func(name, typ string, b []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	return testPKI{caCert: write("ca.pem", "CERTIFICATE", caDER), serverCert: write("server.pem", "CERTIFICATE", der), serverKey: write("server-key.pem", "EC PRIVATE KEY", kder)}
}
