package update

import (
	"context"
	"math/rand/v2"
	"time"
)

// Schedule is when the agent checks: once soon after boot, then every
// Interval plus up to Jitter (so a fleet booted together spreads out), and
// after failures sooner but backing off: Retry, doubled per consecutive
// failure, at most Interval.
type Schedule struct {
	BootDelay time.Duration // first check after boot; default 1 min
	Interval  time.Duration // default 45 min, as Container Linux
	Jitter    time.Duration // default 5 min
	Retry     time.Duration // first retry after a failure; default 1 min
}

func (s Schedule) withDefaults() Schedule {
	if s.BootDelay == 0 {
		s.BootDelay = time.Minute
	}
	if s.Interval == 0 {
		s.Interval = 45 * time.Minute
	}
	if s.Jitter == 0 {
		s.Jitter = 5 * time.Minute
	}
	if s.Retry == 0 {
		s.Retry = time.Minute
	}
	return s
}

// Next is the wait before the next check after failures consecutive
// failed ones; r is a random number in [0,1).
func (s Schedule) Next(failures int, r float64) time.Duration {
	s = s.withDefaults()
	jitter := time.Duration(r * float64(s.Jitter))
	if failures == 0 {
		return s.Interval + jitter
	}
	d := s.Retry
	for i := 1; i < failures && d < s.Interval; i++ {
		d *= 2
	}
	if d > s.Interval {
		d = s.Interval
	}
	// Retries get a proportionate jitter so they spread too.
	return d + time.Duration(r*float64(d)/4)
}

// Run checks on the schedule until ctx ends. An update applied stays
// pending (reboot required) and is not checked for again until the reboot.
func (a *Agent) Run(ctx context.Context, s Schedule) error {
	s = s.withDefaults()
	wait := time.Duration(rand.Float64() * float64(s.BootDelay))
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		if _, err := a.Update(ctx); err != nil {
			failures++
			a.logf("update round failed (%d in a row): %v", failures, err)
		} else {
			failures = 0
		}
		wait = s.Next(failures, rand.Float64())
	}
}
