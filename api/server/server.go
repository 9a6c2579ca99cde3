// Package server serves Orbit's read-only gRPC API (api/v1alpha) from the
// data directory, as `orbit api-service` does: no state of its own, every
// answer read from the files the orbit commands keep (pods' directories,
// the image store, the apps' logs). Pod lifecycle events come from
// watching the pod state directories: the service lists the pods at an
// interval and reports each change of a pod's state.
package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/orbit-pods/orbit/api/v1alpha"
	"github.com/orbit-pods/orbit/image/store"
	"github.com/orbit-pods/orbit/pod/state"
	"github.com/orbit-pods/orbit/stage0"
)

// Server implements v1alpha.PublicAPIServer.
type Server struct {
	v1alpha.UnimplementedPublicAPIServer
	Env     *stage0.Env
	Version string
	// Poll is how often ListenEvents looks at the pods; zero is 200ms.
	Poll time.Duration
}

// Register adds s to g.
func (s *Server) Register(g *grpc.Server) { v1alpha.RegisterPublicAPIServer(g, s) }

// GetInfo says what serves.
func (s *Server) GetInfo(context.Context, *v1alpha.GetInfoRequest) (*v1alpha.GetInfoResponse, error) {
	return &v1alpha.GetInfoResponse{OrbitVersion: s.Version, ApiVersion: "v1alpha", DataDir: s.Env.DataDir}, nil
}

// ListPods lists the pods matching the filters.
func (s *Server) ListPods(ctx context.Context, req *v1alpha.ListPodsRequest) (*v1alpha.ListPodsResponse, error) {
	infos, err := s.Env.List()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "list pods: %v", err)
	}
	out := &v1alpha.ListPodsResponse{}
	for _, info := range infos {
		p := podMessage(info)
		if matchPod(p, req.GetFilters()) {
			out.Pods = append(out.Pods, p)
		}
	}
	sort.Slice(out.Pods, func(i, j int) bool { return out.Pods[i].CreatedAt < out.Pods[j].CreatedAt })
	return out, nil
}

// InspectPod gives one pod.
func (s *Server) InspectPod(ctx context.Context, req *v1alpha.InspectPodRequest) (*v1alpha.InspectPodResponse, error) {
	pd, err := s.Env.FindPod(req.GetId())
	if err != nil {
		return nil, podError(req.GetId(), err)
	}
	info, err := stage0.Inspect(pd)
	if err != nil {
		return nil, podError(req.GetId(), err)
	}
	return &v1alpha.InspectPodResponse{Pod: podMessage(info)}, nil
}

func podError(id string, err error) error {
	switch {
	case errors.Is(err, state.ErrNotFound), errors.Is(err, fs.ErrNotExist):
		return status.Errorf(codes.NotFound, "pod %q: %v", id, err)
	case errors.Is(err, state.ErrAmbiguous):
		return status.Errorf(codes.InvalidArgument, "pod %q: %v", id, err)
	}
	return status.Errorf(codes.Internal, "pod %q: %v", id, err)
}

var podStates = map[string]v1alpha.PodState{
	stage0.ShowEmbryo:    v1alpha.PodState_POD_STATE_EMBRYO,
	stage0.ShowPreparing: v1alpha.PodState_POD_STATE_PREPARING,
	stage0.ShowPrepared:  v1alpha.PodState_POD_STATE_PREPARED,
	stage0.ShowRunning:   v1alpha.PodState_POD_STATE_RUNNING,
	stage0.ShowDead:      v1alpha.PodState_POD_STATE_DEAD,
	stage0.ShowExited:    v1alpha.PodState_POD_STATE_EXITED,
	stage0.ShowGarbage:   v1alpha.PodState_POD_STATE_GARBAGE,
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func podMessage(info *stage0.PodInfo) *v1alpha.Pod {
	p := &v1alpha.Pod{
		Id:         info.UUID,
		State:      podStates[info.State],
		Pid:        int32(info.PID),
		CreatedAt:  unixNano(info.Created),
		StateSince: unixNano(info.Since),
	}
	for _, a := range info.Apps {
		am := &v1alpha.App{Name: a.Name, ImageName: a.Image, ImageId: a.ImageID, OomKilled: a.OOMKilled}
		if a.ExitCode != nil {
			am.Exited, am.ExitCode = true, int32(*a.ExitCode)
		}
		p.Apps = append(p.Apps, am)
	}
	for _, n := range info.Networks {
		p.Networks = append(p.Networks, &v1alpha.Network{Name: n.Name, IfName: n.IfName, Ips: n.IPs})
	}
	return p
}

// matchPod: any filter matches (or there are none).
func matchPod(p *v1alpha.Pod, filters []*v1alpha.PodFilter) bool {
	if len(filters) == 0 {
		return true
	}
	for _, f := range filters {
		if podFilterMatches(p, f) {
			return true
		}
	}
	return false
}

func podFilterMatches(p *v1alpha.Pod, f *v1alpha.PodFilter) bool {
	if len(f.Ids) > 0 && !slices.ContainsFunc(f.Ids, func(id string) bool { return id != "" && strings.HasPrefix(p.Id, id) }) {
		return false
	}
	if len(f.States) > 0 && !slices.Contains(f.States, p.State) {
		return false
	}
	anyApp := func(want []string, field func(*v1alpha.App) string, prefix bool) bool {
		if len(want) == 0 {
			return true
		}
		for _, a := range p.Apps {
			for _, w := range want {
				v := field(a)
				if v == w || (prefix && w != "" && strings.HasPrefix(v, w)) {
					return true
				}
			}
		}
		return false
	}
	if !anyApp(f.AppNames, func(a *v1alpha.App) string { return a.Name }, false) ||
		!anyApp(f.ImageNames, func(a *v1alpha.App) string { return a.ImageName }, false) ||
		!anyApp(f.ImageIds, func(a *v1alpha.App) string { return a.ImageId }, true) {
		return false
	}
	if len(f.Networks) > 0 && !slices.ContainsFunc(p.Networks, func(n *v1alpha.Network) bool { return slices.Contains(f.Networks, n.Name) }) {
		return false
	}
	return true
}

// ListImages lists the stored images matching the filters.
func (s *Server) ListImages(ctx context.Context, req *v1alpha.ListImagesRequest) (*v1alpha.ListImagesResponse, error) {
	st, err := s.Env.Store()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "open the image store: %v", err)
	}
	imgs, err := st.List()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "list images: %v", err)
	}
	out := &v1alpha.ListImagesResponse{}
	for _, img := range imgs {
		m := imageMessage(img)
		if matchImage(m, req.GetFilters()) {
			out.Images = append(out.Images, m)
		}
	}
	return out, nil
}

// InspectImage gives one image.
func (s *Server) InspectImage(ctx context.Context, req *v1alpha.InspectImageRequest) (*v1alpha.InspectImageResponse, error) {
	st, err := s.Env.Store()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "open the image store: %v", err)
	}
	img, err := st.Resolve(req.GetId())
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, status.Errorf(codes.NotFound, "image %q: %v", req.GetId(), err)
		}
		return nil, status.Errorf(codes.InvalidArgument, "image %q: %v", req.GetId(), err)
	}
	return &v1alpha.InspectImageResponse{Image: imageMessage(img)}, nil
}

func imageMessage(img *store.Image) *v1alpha.Image {
	return &v1alpha.Image{
		Id:         img.ID.String(),
		Names:      img.Names,
		MediaType:  img.MediaType,
		Size:       img.Size,
		ImportedAt: unixNano(img.Imported),
		LastUsedAt: unixNano(img.LastUsed),
	}
}

func matchImage(m *v1alpha.Image, filters []*v1alpha.ImageFilter) bool {
	if len(filters) == 0 {
		return true
	}
	for _, f := range filters {
		ok := true
		if len(f.Ids) > 0 && !slices.ContainsFunc(f.Ids, func(id string) bool {
			return id != "" && (strings.HasPrefix(m.Id, id) || strings.HasPrefix(strings.TrimPrefix(m.Id, "sha256:"), id))
		}) {
			ok = false
		}
		if len(f.Names) > 0 && !slices.ContainsFunc(f.Names, func(want string) bool {
			return slices.ContainsFunc(m.Names, func(n string) bool {
				return n == want || (strings.HasSuffix(want, "/") && strings.HasPrefix(n, want))
			})
		}) {
			ok = false
		}
		if f.ImportedAfter != 0 && m.ImportedAt <= f.ImportedAfter {
			ok = false
		}
		if f.ImportedBefore != 0 && m.ImportedAt >= f.ImportedBefore {
			ok = false
		}
		if ok {
			return true
		}
	}
	return false
}

// GetLogs streams log lines, in batches as they are read.
func (s *Server) GetLogs(req *v1alpha.GetLogsRequest, stream grpc.ServerStreamingServer[v1alpha.GetLogsResponse]) error {
	if req.GetTail() < 0 {
		return status.Errorf(codes.InvalidArgument, "tail %d is negative", req.GetTail())
	}
	opts := stage0.LogOptions{App: req.GetAppName(), Follow: req.GetFollow(), Tail: int(req.GetTail())}
	if req.GetSince() != 0 {
		opts.Since = time.Unix(0, req.GetSince())
	}
	err := s.Env.Logs(stream.Context(), req.GetPodId(), opts, func(l stage0.LogLine) error {
		return stream.Send(&v1alpha.GetLogsResponse{Lines: []*v1alpha.LogLine{{
			AppName: l.App, Time: unixNano(l.Time), Stream: l.Stream, Message: l.Message, Partial: l.Partial,
		}}})
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, stage0.ErrNoSuchApp):
		return status.Errorf(codes.NotFound, "%v", err)
	case errors.Is(err, state.ErrNotFound), errors.Is(err, state.ErrAmbiguous):
		return podError(req.GetPodId(), err)
	case status.Code(err) != codes.Unknown:
		return err
	}
	return status.Errorf(codes.Internal, "logs of pod %q: %v", req.GetPodId(), err)
}

// ListenEvents streams pod lifecycle events until the client goes.
func (s *Server) ListenEvents(req *v1alpha.ListenEventsRequest, stream grpc.ServerStreamingServer[v1alpha.ListenEventsResponse]) error {
	poll := s.Poll
	if poll <= 0 {
		poll = 200 * time.Millisecond
	}
	w := &watcher{env: s.Env, ids: req.GetPodIds()}
	// The first look only learns what is there: events are changes.
	if _, err := w.look(); err != nil {
		return status.Errorf(codes.Internal, "%v", err)
	}
	// Headers go out now, so a client knows it is listening.
	if err := stream.SendHeader(nil); err != nil {
		return err
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case <-t.C:
		}
		evs, err := w.look()
		if err != nil {
			return status.Errorf(codes.Internal, "%v", err)
		}
		if len(evs) > 0 {
			if err := stream.Send(&v1alpha.ListenEventsResponse{Events: evs}); err != nil {
				return err
			}
		}
	}
}

// watcher turns successive listings of the pods into events.
type watcher struct {
	env  *stage0.Env
	ids  []string
	seen map[string]*v1alpha.Pod
}

func (w *watcher) look() ([]*v1alpha.Event, error) {
	infos, err := w.env.List()
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	now := time.Now().UnixNano()
	cur := map[string]*v1alpha.Pod{}
	var evs []*v1alpha.Event
	for _, info := range infos {
		if len(w.ids) > 0 && !slices.ContainsFunc(w.ids, func(id string) bool { return id != "" && strings.HasPrefix(info.UUID, id) }) {
			continue
		}
		p := podMessage(info)
		cur[p.Id] = p
		if w.seen == nil {
			continue
		}
		old := w.seen[p.Id]
		if old != nil && old.State == p.State && (p.State != v1alpha.PodState_POD_STATE_RUNNING || old.Pid == p.Pid) {
			continue
		}
		for _, t := range transitions(old, p) {
			evs = append(evs, &v1alpha.Event{Type: t, PodId: p.Id, Time: now, Pod: p})
		}
	}
	if w.seen != nil {
		for id := range w.seen {
			if cur[id] == nil {
				evs = append(evs, &v1alpha.Event{Type: v1alpha.EventType_EVENT_TYPE_POD_REMOVED, PodId: id, Time: now})
			}
		}
	}
	w.seen = cur
	return evs, nil
}

// transitions are the events between two looks at a pod: a pod that went
// from nothing to exited between two looks was prepared, started and
// exited, and each is said.
func transitions(old, p *v1alpha.Pod) []v1alpha.EventType {
	rank := func(q *v1alpha.Pod) int {
		if q == nil {
			return 0
		}
		switch q.State {
		case v1alpha.PodState_POD_STATE_PREPARED:
			return 1
		case v1alpha.PodState_POD_STATE_RUNNING:
			if q.Pid == 0 {
				return 1 // starting: not yet running its apps
			}
			return 2
		case v1alpha.PodState_POD_STATE_EXITED, v1alpha.PodState_POD_STATE_DEAD, v1alpha.PodState_POD_STATE_GARBAGE:
			return 3
		}
		return 0
	}
	from, to := rank(old), rank(p)
	var out []v1alpha.EventType
	if from < 1 && to >= 1 {
		out = append(out, v1alpha.EventType_EVENT_TYPE_POD_PREPARED)
	}
	// A pod that exited unseen may never have run: it says so only if it
	// has an app that exited.
	ran := p.State == v1alpha.PodState_POD_STATE_RUNNING && p.Pid != 0 ||
		slices.ContainsFunc(p.Apps, func(a *v1alpha.App) bool { return a.Exited })
	if from < 2 && to >= 2 && ran {
		out = append(out, v1alpha.EventType_EVENT_TYPE_POD_STARTED)
	}
	if from < 3 && to == 3 {
		switch p.State {
		case v1alpha.PodState_POD_STATE_DEAD:
			out = append(out, v1alpha.EventType_EVENT_TYPE_POD_DIED)
		case v1alpha.PodState_POD_STATE_EXITED:
			out = append(out, v1alpha.EventType_EVENT_TYPE_POD_EXITED)
		}
	}
	return out
}
