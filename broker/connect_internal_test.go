package broker

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	b := backoff(50*time.Millisecond, 2*time.Second)
	for attempts, full := range map[int]time.Duration{
		1: 50 * time.Millisecond, 2: 100 * time.Millisecond, 3: 200 * time.Millisecond,
		7: 2 * time.Second, 100: 2 * time.Second,
	} {
		for range 100 {
			d := b(attempts)
			if d < full/2 || d >= full {
				t.Fatalf("backoff(%d) = %s, want in [%s, %s)", attempts, d, full/2, full)
			}
		}
	}
}

func TestRedactURL(t *testing.T) {
	tests := map[string]string{
		"nats://127.0.0.1:4222":                       "nats://127.0.0.1:4222",
		"nats://user:secret@127.0.0.1:4222":           "nats://redacted@127.0.0.1:4222",
		"nats://s3cr3ttoken@host:4222":                "nats://redacted@host:4222",
		"tls://u:p@a:1, nats://b:2":                   "tls://redacted@a:1,nats://b:2",
		"user:p%40ss@host:4222":                       "redacted@host:4222",
		"nats://u:pa@ss@host:4222,nats://x:y@h2:4222": "nats://redacted@host:4222,nats://redacted@h2:4222",
	}
	for in, want := range tests {
		if got := redactURLs(in); got != want {
			t.Errorf("redactURLs(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero", Config{}, true},
		{"cluster list", Config{URL: "nats://a:4222,nats://b:4222, c:4222"}, true},
		{"user", Config{User: "u", Password: "p"}, true},
		{"token", Config{Token: "t"}, true},
		{"empty in list", Config{URL: "nats://a:4222,,nats://b:4222"}, false},
		{"bad url", Config{URL: "nats://user:se cret@a b:4222"}, false},
		{"password only", Config{Password: "p"}, false},
		{"token and user", Config{User: "u", Token: "t"}, false},
		{"nkey and creds", Config{NKeySeedFile: "a", CredsFile: "b"}, false},
		{"cert without key", Config{TLS: ClientTLS{CertFile: "c"}}, false},
		{"negative wait", Config{ReconnectWait: -1}, false},
		{"max below min", Config{ReconnectWait: time.Second, MaxReconnectWait: time.Millisecond}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.ok != (err == nil) {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if err != nil {
				if !errors.Is(err, ErrInvalidConfig) {
					t.Errorf("Validate() = %v, want ErrInvalidConfig", err)
				}
				if strings.Contains(err.Error(), "se cret") {
					t.Errorf("Validate() leaks the password: %v", err)
				}
			}
		})
	}
}
