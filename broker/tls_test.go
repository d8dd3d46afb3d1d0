package broker_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"understudy/broker"
	"understudy/broker/brokertest"
)

func TestConnectTLS(t *testing.T) {
	pki := newTestPKI(t)
	srv := brokertest.Start(t, func(c *broker.EmbeddedConfig) {
		c.TLS = broker.ServerTLS{CertFile: pki.serverCert, KeyFile: pki.serverKey, CAFile: pki.caCert, VerifyClients: true}
	})
	if !strings.HasPrefix(srv.URL(), "tls://") {
		t.Fatalf("url %s, want tls://", srv.URL())
	}
	nc := srv.Connect(t, func(c *broker.Config) {
		c.TLS = broker.ClientTLS{CAFile: pki.caCert, CertFile: pki.clientCert, KeyFile: pki.clientKey}
	})
	if !nc.TLSRequired() {
		t.Fatal("connection is not TLS")
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	// Without a client certificate the server refuses; without the CA the
	// client refuses the server.
	for name, tc := range map[string]broker.ClientTLS{
		"no client cert": {CAFile: pki.caCert},
		"unknown ca":     {CertFile: pki.clientCert, KeyFile: pki.clientKey},
	} {
		cfg := srv.ClientConfig(t)
		cfg.TLS = tc
		// TLS failures are retried like any other until ctx ends.
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		nc, err := broker.Connect(ctx, cfg)
		cancel()
		if err == nil {
			nc.Close()
			t.Fatalf("%s: Connect succeeded", name)
		}
		if !errors.Is(err, broker.ErrNoConnection) {
			t.Errorf("%s: error = %v, want ErrNoConnection", name, err)
		}
	}
}

type testPKI struct {
	caCert, serverCert, serverKey, clientCert, clientKey string
}

// newTestPKI writes a CA, a server certificate for 127.0.0.1 and a client
// certificate, all signed by the CA, as PEM files in a temporary directory.
func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "understudy test ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	p := testPKI{caCert: writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)}
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (cert, key string) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
			DNSNames:     []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return writePEM(t, dir, name+".pem", "CERTIFICATE", der), writePEM(t, dir, name+"-key.pem", "EC PRIVATE KEY", kder)
	}
	p.serverCert, p.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
