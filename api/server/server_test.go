package server

import (
	"slices"
	"testing"

	"github.com/orbit-pods/orbit/api/v1alpha"
)

func TestPodFilters(t *testing.T) {
	p := &v1alpha.Pod{
		Id:       "6a6e3a3b-0b2f-4c1c-9a4e-1f2d3c4b5a69",
		State:    v1alpha.PodState_POD_STATE_RUNNING,
		Apps:     []*v1alpha.App{{Name: "web", ImageName: "demo:latest", ImageId: "sha256:abcdef"}},
		Networks: []*v1alpha.Network{{Name: "default"}},
	}
	for _, c := range []struct {
		f    []*v1alpha.PodFilter
		want bool
	}{
		{nil, true},
		{[]*v1alpha.PodFilter{{Ids: []string{"6a6e"}}}, true},
		{[]*v1alpha.PodFilter{{Ids: []string{"7"}}}, false},
		{[]*v1alpha.PodFilter{{States: []v1alpha.PodState{v1alpha.PodState_POD_STATE_EXITED}}}, false},
		{[]*v1alpha.PodFilter{{States: []v1alpha.PodState{v1alpha.PodState_POD_STATE_EXITED, v1alpha.PodState_POD_STATE_RUNNING}}}, true},
		{[]*v1alpha.PodFilter{{AppNames: []string{"web"}, ImageIds: []string{"sha256:abc"}}}, true},
		{[]*v1alpha.PodFilter{{AppNames: []string{"web"}, ImageNames: []string{"other"}}}, false},
		{[]*v1alpha.PodFilter{{Networks: []string{"flannel"}}}, false},
		// Filters are alternatives.
		{[]*v1alpha.PodFilter{{Networks: []string{"flannel"}}, {Networks: []string{"default"}}}, true},
	} {
		if got := matchPod(p, c.f); got != c.want {
			t.Errorf("filters %v: %v, want %v", c.f, got, c.want)
		}
	}
}

func TestImageFilters(t *testing.T) {
	m := &v1alpha.Image{Id: "sha256:0123abcd", Names: []string{"example.com/app:1"}, ImportedAt: 100}
	for _, c := range []struct {
		f    *v1alpha.ImageFilter
		want bool
	}{
		{&v1alpha.ImageFilter{Ids: []string{"0123"}}, true},
		{&v1alpha.ImageFilter{Ids: []string{"sha256:0123"}}, true},
		{&v1alpha.ImageFilter{Names: []string{"example.com/"}}, true},
		{&v1alpha.ImageFilter{Names: []string{"example.com"}}, false},
		{&v1alpha.ImageFilter{ImportedAfter: 99, ImportedBefore: 101}, true},
		{&v1alpha.ImageFilter{ImportedAfter: 100}, false},
	} {
		if got := matchImage(m, []*v1alpha.ImageFilter{c.f}); got != c.want {
			t.Errorf("filter %v: %v, want %v", c.f, got, c.want)
		}
	}
}

func TestTransitionsSayWhatHappenedBetweenLooks(t *testing.T) {
	pod := func(s v1alpha.PodState, pid int32, exited bool) *v1alpha.Pod {
		return &v1alpha.Pod{State: s, Pid: pid, Apps: []*v1alpha.App{{Exited: exited}}}
	}
	const (
		prepared = v1alpha.EventType_EVENT_TYPE_POD_PREPARED
		started  = v1alpha.EventType_EVENT_TYPE_POD_STARTED
		exited   = v1alpha.EventType_EVENT_TYPE_POD_EXITED
		died     = v1alpha.EventType_EVENT_TYPE_POD_DIED
	)
	for _, c := range []struct {
		name     string
		old, new *v1alpha.Pod
		want     []v1alpha.EventType
	}{
		{"new and starting", nil, pod(v1alpha.PodState_POD_STATE_RUNNING, 0, false), []v1alpha.EventType{prepared}},
		{"starting to running", pod(v1alpha.PodState_POD_STATE_RUNNING, 0, false), pod(v1alpha.PodState_POD_STATE_RUNNING, 7, false), []v1alpha.EventType{started}},
		{"unseen whole life", nil, pod(v1alpha.PodState_POD_STATE_EXITED, 0, true), []v1alpha.EventType{prepared, started, exited}},
		{"running to dead", pod(v1alpha.PodState_POD_STATE_RUNNING, 7, false), pod(v1alpha.PodState_POD_STATE_DEAD, 0, false), []v1alpha.EventType{died}},
		{"embryo", nil, pod(v1alpha.PodState_POD_STATE_EMBRYO, 0, false), nil},
	} {
		if got := transitions(c.old, c.new); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
