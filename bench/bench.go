// Package bench runs commands side by side and reports medians: the
// comparison harness of docs/benchmarks.md. Commands of one group run
// alternately, round after round, so a machine that slows down or speeds
// up during the run affects them all alike.
package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"
)

// Command is one contestant of a group.
type Command struct {
	Name string
	// Argv runs through sh -c when it is a single string with spaces.
	Argv []string
	// Prepare runs before each timed run, untimed (e.g. to remove a
	// container of the same name).
	Prepare []string
}

// Group is one measure: contestants timed against each other.
type Group struct {
	Title    string
	Commands []Command
	Rounds   int
	Warmup   int
}

// Result is a command's timings.
type Result struct {
	Name    string
	Samples []time.Duration
	Failed  int
}

// Median of the samples.
func (r Result) Median() time.Duration {
	if len(r.Samples) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), r.Samples...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func run(ctx context.Context, argv []string) error {
	if len(argv) == 0 {
		return nil
	}
	c := exec.CommandContext(ctx, argv[0], argv[1:]...)
	c.Stdout, c.Stderr = io.Discard, os.Stderr
	return c.Run()
}

// Run times every command of g, alternating.
func Run(ctx context.Context, g Group) []Result {
	res := make([]Result, len(g.Commands))
	for i, c := range g.Commands {
		res[i].Name = c.Name
	}
	for round := -g.Warmup; round < g.Rounds; round++ {
		for i, c := range g.Commands {
			if err := run(ctx, c.Prepare); err != nil {
				fmt.Fprintf(os.Stderr, "bench: prepare %s: %v\n", c.Name, err)
			}
			start := time.Now()
			err := run(ctx, c.Argv)
			d := time.Since(start)
			if round < 0 {
				continue
			}
			if err != nil {
				res[i].Failed++
				fmt.Fprintf(os.Stderr, "bench: %s: %v\n", c.Name, err)
				continue
			}
			res[i].Samples = append(res[i].Samples, d)
		}
	}
	return res
}

// Table writes a markdown table of medians and of the ratio of the first
// command (Orbit) to each other one.
func Table(w io.Writer, title string, res []Result) {
	fmt.Fprintf(w, "\n### %s\n\n| command | median | runs | failed | orbit / this |\n|---|---:|---:|---:|---:|\n", title)
	base := res[0].Median()
	for _, r := range res {
		ratio := "-"
		if m := r.Median(); m > 0 && base > 0 {
			ratio = fmt.Sprintf("%.2f", float64(base)/float64(m))
		}
		fmt.Fprintf(w, "| %s | %s | %d | %d | %s |\n", r.Name, fmtDur(r.Median()), len(r.Samples), r.Failed, ratio)
	}
}

func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
}

// Shell wraps a command line for sh -c.
func Shell(s string) []string { return []string{"sh", "-c", s} }

// Words splits a simple command line on spaces.
func Words(s string) []string { return strings.Fields(s) }
