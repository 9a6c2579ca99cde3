package main

import (
	"reflect"
	"testing"

	"github.com/orbit-pods/orbit/stage0"
)

func TestParseApps(t *testing.T) {
	got, err := parseApps([]string{"demo", "--exec=/bin/sh", "--", "-c", "exit 7", "---", "other:1", "--user=1000"})
	if err != nil {
		t.Fatal(err)
	}
	want := []stage0.AppOptions{
		{Image: "demo", Exec: "/bin/sh", Args: []string{"-c", "exit 7"}, HasArgs: true},
		{Image: "other:1", User: "1000"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestParseAppsRefusesBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"demo", "stray"},
		{"demo", "--bogus"},
		{"demo", "---"},
		{"--exec=/bin/sh"},
	} {
		if _, err := parseApps(args); err == nil {
			t.Errorf("parseApps(%q) accepted", args)
		}
	}
}
