package reboot

import (
	"fmt"
	"strings"
	"time"
)

// Window is a recurring period in which reboots may happen, as locksmith's
// LOCKSMITHD_REBOOT_WINDOW_START ("Thu 04:00", or "04:00" for every day)
// and LOCKSMITHD_REBOOT_WINDOW_LENGTH ("1h30m") set it. Times are in the
// machine's local time zone. The zero Window allows any time.
type Window struct {
	// Weekday is the day the window opens, or -1 for every day.
	Weekday time.Weekday
	// Hour and Minute are when it opens.
	Hour, Minute int
	// Length is how long it stays open; 0 means no window.
	Length time.Duration
}

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// ParseWindow reads a window's start and length. Both empty is no window;
// one without the other is an error.
func ParseWindow(start, length string) (Window, error) {
	start, length = strings.TrimSpace(start), strings.TrimSpace(length)
	if start == "" && length == "" {
		return Window{}, nil
	}
	if start == "" || length == "" {
		return Window{}, fmt.Errorf("reboot window: start %q and length %q must be set together", start, length)
	}
	w := Window{Weekday: -1}
	clock := start
	if f := strings.Fields(start); len(f) == 2 {
		day := strings.ToLower(f[0])
		d, ok := weekdays[day]
		if !ok && len(day) > 3 {
			d, ok = weekdays[day[:3]]
			ok = ok && day == strings.ToLower(d.String())
		}
		if !ok {
			return Window{}, fmt.Errorf("reboot window start %q: %q is not a day of the week", start, f[0])
		}
		w.Weekday, clock = d, f[1]
	} else if len(f) != 1 {
		return Window{}, fmt.Errorf("reboot window start %q: want [DAY] HH:MM", start)
	}
	t, err := time.Parse("15:04", clock)
	if err != nil {
		return Window{}, fmt.Errorf("reboot window start %q: want [DAY] HH:MM: %w", start, err)
	}
	w.Hour, w.Minute = t.Hour(), t.Minute()
	d, err := time.ParseDuration(length)
	if err != nil {
		return Window{}, fmt.Errorf("reboot window length %q: %w", length, err)
	}
	period := 24 * time.Hour
	if w.Weekday >= 0 {
		period = 7 * 24 * time.Hour
	}
	if d <= 0 || d > period {
		return Window{}, fmt.Errorf("reboot window length %q: must be more than 0 and at most %s", length, period)
	}
	w.Length = d
	return w, nil
}

// IsSet tells whether w restricts reboots at all.
func (w Window) IsSet() bool { return w.Length > 0 }

// Wait is how long from now until the window is open: 0 inside it.
func (w Window) Wait(now time.Time) time.Duration {
	if !w.IsSet() {
		return 0
	}
	// The latest opening at or before now; the window is open if now is
	// within Length of it, else the next opening is one period later.
	open := time.Date(now.Year(), now.Month(), now.Day(), w.Hour, w.Minute, 0, 0, now.Location())
	period := 1
	if w.Weekday >= 0 {
		period = 7
		open = open.AddDate(0, 0, int(w.Weekday)-int(now.Weekday()))
	}
	if open.After(now) {
		open = open.AddDate(0, 0, -period)
	}
	if now.Before(open.Add(w.Length)) {
		return 0
	}
	return open.AddDate(0, 0, period).Sub(now)
}

func (w Window) String() string {
	if !w.IsSet() {
		return "any time"
	}
	day := "every day"
	if w.Weekday >= 0 {
		day = w.Weekday.String()[:3]
	}
	return fmt.Sprintf("%s %02d:%02d for %s", day, w.Hour, w.Minute, w.Length)
}
