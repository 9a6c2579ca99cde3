//go:build tools

// Package tools pins cri-tools, the CRI's conformance suite (critest) and
// client (crictl), for orbit-cri's functional test. A module of its own so
// that the main module does not carry cri-tools' dependencies; critest is a
// Go test binary (go test -c), which `go install` cannot build.
package tools

import (
	_ "sigs.k8s.io/cri-tools/cmd/crictl"
	_ "sigs.k8s.io/cri-tools/cmd/critest"
)
