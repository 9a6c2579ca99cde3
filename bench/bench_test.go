package bench

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestMedianAndTable(t *testing.T) {
	r := Result{Name: "a", Samples: []time.Duration{3, 1, 2}}
	if r.Median() != 2 {
		t.Fatal(r.Median())
	}
	var b bytes.Buffer
	Table(&b, "t", []Result{{Name: "orbit", Samples: []time.Duration{time.Millisecond}}, {Name: "peer", Samples: []time.Duration{2 * time.Millisecond}}})
	if !strings.Contains(b.String(), "| peer | 2.0 ms | 1 | 0 | 0.50 |") {
		t.Fatal(b.String())
	}
}
