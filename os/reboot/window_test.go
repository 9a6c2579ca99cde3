package reboot

import (
	"testing"
	"time"
)

func TestWindowWait(t *testing.T) {
	utc := time.UTC
	// 2026-11-19 is a Thursday.
	thu0400, err := ParseWindow("Thu 04:00", "1h30m")
	if err != nil {
		t.Fatal(err)
	}
	if w, err := ParseWindow("thursday 04:00", "1h30m"); err != nil || w != thu0400 {
		t.Errorf("full day name: %s, %v", w, err)
	}
	daily, err := ParseWindow("23:00", "2h")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		w    Window
		now  time.Time
		want time.Duration
	}{
		{thu0400, time.Date(2026, 11, 19, 4, 0, 0, 0, utc), 0},
		{thu0400, time.Date(2026, 11, 19, 5, 29, 0, 0, utc), 0},
		{thu0400, time.Date(2026, 11, 19, 5, 30, 0, 0, utc), 7*24*time.Hour - 90*time.Minute},
		{thu0400, time.Date(2026, 11, 19, 3, 0, 0, 0, utc), time.Hour},
		{thu0400, time.Date(2026, 11, 23, 4, 0, 0, 0, utc), 3 * 24 * time.Hour}, // Monday
		{daily, time.Date(2026, 11, 19, 0, 30, 0, 0, utc), 0},                   // spans midnight
		{daily, time.Date(2026, 11, 19, 1, 0, 0, 0, utc), 22 * time.Hour},
		{daily, time.Date(2026, 11, 19, 22, 0, 0, 0, utc), time.Hour},
		{Window{}, time.Date(2026, 11, 19, 22, 0, 0, 0, utc), 0},
	} {
		if got := c.w.Wait(c.now); got != c.want {
			t.Errorf("%s at %s: wait %s, want %s", c.w, c.now.Format(time.RFC1123), got, c.want)
		}
	}
}

func TestParseWindowRefusesBadInput(t *testing.T) {
	for _, c := range [][2]string{
		{"Thu 04:00", ""}, {"", "1h"}, {"Thux 04:00", "1h"}, {"Thu 25:00", "1h"},
		{"Thu", "1h"}, {"Thursdays 04:00", "1h"}, {"Thu 04:00", "-1h"}, {"04:00", "25h"}, {"Thu 04:00", "soon"},
	} {
		if w, err := ParseWindow(c[0], c[1]); err == nil {
			t.Errorf("ParseWindow(%q, %q) = %s, want an error", c[0], c[1], w)
		}
	}
}
