package broker_test

import (
	"errors"
	"strings"
	"testing"

	"understudy/broker"
)

func TestValidToken(t *testing.T) {
	long := strings.Repeat("a", 10<<10)
	tests := []struct {
		name string
		tok  string
		ok   bool
	}{
		{"uuid-like", "3f2a9c1e-8b7d-4e6f-a1b2-c3d4e5f60718", true},
		{"base64url", "q8Zz_-09AZaz", true},
		{"single", "x", true},
		{"max length", strings.Repeat("b", broker.MaxTokenLen), true},
		{"empty", "", false},
		{"dot", "a.b", false},
		{"leading dot", ".a", false},
		{"star", "*", false},
		{"gt", ">", false},
		{"star inside", "ab*cd", false},
		{"space", "a b", false},
		{"tab", "a\tb", false},
		{"newline", "a\r\nPUB x 1", false},
		{"nul", "a\x00", false},
		{"del", "a\x7f", false},
		{"non-ascii", "café", false},
		{"invalid utf8", "a\xff", false},
		{"slash", "a/b", false},
		{"dollar", "$JS", false},
		{"too long", strings.Repeat("b", broker.MaxTokenLen+1), false},
		{"10 KB", long, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := broker.ValidToken(tt.tok)
			if tt.ok {
				if err != nil {
					t.Fatalf("ValidToken(%q) = %v, want nil", tt.tok, err)
				}
				return
			}
			if !errors.Is(err, broker.ErrInvalidToken) {
				t.Fatalf("ValidToken(%.50q) = %v, want ErrInvalidToken", tt.tok, err)
			}
			// The input is quoted and cut, so hostile ids cannot flood
			// logs or smuggle control characters into them.
			if len(err.Error()) > 160 {
				t.Errorf("error is %d bytes: %.200s", len(err.Error()), err)
			}
			if strings.ContainsAny(err.Error(), "\r\n\t\x00\x7f") {
				t.Errorf("error carries control characters: %q", err)
			}
		})
	}
}

func TestValidTokenQuotesLongInput(t *testing.T) {
	err := broker.ValidToken(strings.Repeat("x", 10<<10))
	want := `"` + strings.Repeat("x", 40) + `"... (10240 bytes)`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("ValidToken(10 KB) = %v, want it to contain %s", err, want)
	}
}

func TestSubjectsDefault(t *testing.T) {
	var s broker.Subjects // the zero value uses the default prefix
	sess, err := s.SessionSubject("abc-123")
	if err != nil {
		t.Fatal(err)
	}
	hb, err := s.HeartbeatSubject("node-1")
	if err != nil {
		t.Fatal(err)
	}
	node, err := s.NodeSubject("node_2")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{
		"prefix":   s.Prefix(),
		"stream":   s.StreamName(),
		"session":  sess,
		"sessions": s.SessionFilter(),
		"hb":       hb,
		"hbs":      s.HeartbeatFilter(),
		"failover": s.FailoverSubject(),
		"control":  s.ControlFilter(),
		"node":     node,
		"bucket":   s.GroupsBucket(),
	}
	want := map[string]string{
		"prefix":   "understudy",
		"stream":   "UNDERSTUDY_SESSIONS",
		"session":  "understudy.sess.abc-123",
		"sessions": "understudy.sess.>",
		"hb":       "understudy.hb.node-1",
		"hbs":      "understudy.hb.>",
		"failover": "understudy.control.failover",
		"control":  "understudy.control.>",
		"node":     "understudy.node.node_2",
		"bucket":   "understudy_groups",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %q, want %q", k, got[k], w)
		}
	}
}

func TestNewSubjects(t *testing.T) {
	tests := []struct {
		prefix, stream, session, bucket string
	}{
		{"", "UNDERSTUDY_SESSIONS", "understudy.sess.s1", "understudy_groups"},
		{"acme-staging", "ACME-STAGING_SESSIONS", "acme-staging.sess.s1", "acme-staging_groups"},
		{"Q_1", "Q_1_SESSIONS", "Q_1.sess.s1", "Q_1_groups"},
	}
	for _, tt := range tests {
		s, err := broker.NewSubjects(tt.prefix)
		if err != nil {
			t.Fatalf("NewSubjects(%q): %v", tt.prefix, err)
		}
		sess, err := s.SessionSubject("s1")
		if err != nil {
			t.Fatal(err)
		}
		if s.StreamName() != tt.stream || sess != tt.session || s.GroupsBucket() != tt.bucket {
			t.Errorf("NewSubjects(%q): stream %q session %q bucket %q", tt.prefix, s.StreamName(), sess, s.GroupsBucket())
		}
	}
	for _, bad := range []string{"a.b", "a*", ">", "with space", "a\n", strings.Repeat("p", broker.MaxPrefixLen+1)} {
		if _, err := broker.NewSubjects(bad); !errors.Is(err, broker.ErrInvalidToken) {
			t.Errorf("NewSubjects(%q) = %v, want ErrInvalidToken", bad, err)
		}
	}
}

func TestSubjectsRejectHostileTokens(t *testing.T) {
	var s broker.Subjects
	for _, bad := range []string{"", "a.b", "*", ">", "x y", "a\x00", strings.Repeat("z", 10<<10)} {
		if subj, err := s.SessionSubject(bad); !errors.Is(err, broker.ErrInvalidToken) || subj != "" {
			t.Errorf("SessionSubject(%.20q) = %q, %v; want ErrInvalidToken", bad, subj, err)
		}
		if _, err := s.HeartbeatSubject(bad); !errors.Is(err, broker.ErrInvalidToken) {
			t.Errorf("HeartbeatSubject(%.20q) = %v; want ErrInvalidToken", bad, err)
		}
		if _, err := s.NodeSubject(bad); !errors.Is(err, broker.ErrInvalidToken) {
			t.Errorf("NodeSubject(%.20q) = %v; want ErrInvalidToken", bad, err)
		}
	}
}

func TestSessionID(t *testing.T) {
	var s broker.Subjects
	subj, err := s.SessionSubject("abc")
	if err != nil {
		t.Fatal(err)
	}
	if id, err := s.SessionID(subj); err != nil || id != "abc" {
		t.Fatalf("SessionID(%q) = %q, %v", subj, id, err)
	}
	for _, bad := range []string{"understudy.sess.", "understudy.sess.a.b", "other.sess.abc", "understudy.hb.abc", "understudy.sess"} {
		if _, err := s.SessionID(bad); !errors.Is(err, broker.ErrInvalidToken) {
			t.Errorf("SessionID(%q) = %v, want ErrInvalidToken", bad, err)
		}
	}
}
