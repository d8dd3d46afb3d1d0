package group

import (
	"encoding/json"
	"time"
)

// Status and MemberState are read by people (the gateway's
// /understudy/group): their durations are written as Go writes them,
// "312ms", rounded to the millisecond, rather than as bare nanoseconds.

// MarshalJSON writes the status with its lease age as a duration string.
func (s Status) MarshalJSON() ([]byte, error) {
	type plain Status
	return json.Marshal(struct {
		plain
		LeaseAge string `json:"lease_age"`
	}{plain(s), durationText(s.LeaseAge)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *Status) UnmarshalJSON(b []byte) error {
	type plain Status
	var v struct {
		plain
		LeaseAge string `json:"lease_age"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	age, err := parseDurationText(v.LeaseAge)
	if err != nil {
		return err
	}
	*s = Status(v.plain)
	s.LeaseAge = age
	return nil
}

// MarshalJSON writes the member with the age of its heartbeat as a
// duration string.
func (m MemberState) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Heartbeat
		Age  string `json:"age"`
		Gone bool   `json:"gone"`
	}{m.Heartbeat, durationText(m.Age), m.Gone})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (m *MemberState) UnmarshalJSON(b []byte) error {
	var v struct {
		Heartbeat
		Age  string `json:"age"`
		Gone bool   `json:"gone"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	age, err := parseDurationText(v.Age)
	if err != nil {
		return err
	}
	*m = MemberState{Heartbeat: v.Heartbeat, Age: age, Gone: v.Gone}
	return nil
}

func durationText(d time.Duration) string { return d.Round(time.Millisecond).String() }

func parseDurationText(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	return time.ParseDuration(s)
}
