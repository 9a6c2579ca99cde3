//go:build functional

package functional

import (
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/orbit-pods/orbit/api/v1alpha"
)

// startAPIService runs `orbit api-service` on the env's data and returns a
// client of it.
func (e *env) startAPIService() (v1alpha.PublicAPIClient, string) {
	e.t.Helper()
	sock := filepath.Join(e.root, "api.sock")
	e.start("api-service", "--socket="+sock)
	waitFor(e.t, "the API service to listen", 10*time.Second, func() bool {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() })
	return v1alpha.NewPublicAPIClient(conn), sock
}

func TestAPIServiceListsWatchesAndReadsLogs(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	c, sock := e.startAPIService()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	info, err := c.GetInfo(ctx, &v1alpha.GetInfoRequest{})
	if err != nil || info.ApiVersion != "v1alpha" || info.DataDir != e.data {
		t.Fatalf("GetInfo: %v %v", info, err)
	}
	all, err := c.ListImages(ctx, &v1alpha.ListImagesRequest{})
	if err != nil || len(all.Images) != 1 || len(all.Images[0].Names) == 0 {
		t.Fatalf("ListImages: %v %v", all, err)
	}
	demoName := all.Images[0].Names[0]
	imgs, err := c.ListImages(ctx, &v1alpha.ListImagesRequest{Filters: []*v1alpha.ImageFilter{{Names: []string{demoName}}}})
	if err != nil || len(imgs.Images) != 1 {
		t.Fatalf("ListImages %s: %v %v", demoName, imgs, err)
	}
	if r, err := c.ListImages(ctx, &v1alpha.ListImagesRequest{Filters: []*v1alpha.ImageFilter{{Names: []string{"nope"}}}}); err != nil || len(r.Images) != 0 {
		t.Fatalf("ListImages nope: %v %v", r, err)
	}
	if r, err := c.InspectImage(ctx, &v1alpha.InspectImageRequest{Id: imgs.Images[0].Id}); err != nil || r.Image.Id != imgs.Images[0].Id {
		t.Fatalf("InspectImage: %v %v", r, err)
	}

	// Events of a pod from its start to its removal.
	events, err := c.ListenEvents(ctx, &v1alpha.ListenEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := events.Header(); err != nil {
		t.Fatal(err)
	}
	uuid, wait := e.startPod("demo", "--exec=/bin/sh", "--", "-c", "echo hello; echo oops >&2; while [ ! -e /tmp/go ]; do sleep 0.05; done")
	running, err := c.ListPods(ctx, &v1alpha.ListPodsRequest{Filters: []*v1alpha.PodFilter{{States: []v1alpha.PodState{v1alpha.PodState_POD_STATE_RUNNING}, AppNames: []string{"demo"}}}})
	if err != nil || len(running.Pods) != 1 || running.Pods[0].Id != uuid || running.Pods[0].Pid == 0 {
		t.Fatalf("ListPods running: %v %v", running, err)
	}
	if r, err := c.ListPods(ctx, &v1alpha.ListPodsRequest{Filters: []*v1alpha.PodFilter{{States: []v1alpha.PodState{v1alpha.PodState_POD_STATE_EXITED}}}}); err != nil || len(r.Pods) != 0 {
		t.Fatalf("ListPods exited: %v %v", r, err)
	}
	// Logs, followed while the pod runs.
	logs, err := c.GetLogs(ctx, &v1alpha.GetLogsRequest{PodId: uuid, Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 2 {
		r, err := logs.Recv()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range r.Lines {
			got = append(got, l.Stream+":"+l.Message)
		}
	}
	e.mustOrbit("enter", uuid, "/bin/touch", "/tmp/go")
	wait()
	if _, err := logs.Recv(); err == nil {
		t.Errorf("the followed logs did not end with the pod")
	}
	if strings.Join(got, ",") != "stdout:hello,stderr:oops" && strings.Join(got, ",") != "stderr:oops,stdout:hello" {
		t.Errorf("logs: %v", got)
	}
	p, err := c.InspectPod(ctx, &v1alpha.InspectPodRequest{Id: uuid[:8]})
	if err != nil || p.Pod.State != v1alpha.PodState_POD_STATE_EXITED || !p.Pod.Apps[0].Exited || p.Pod.Apps[0].ExitCode != 0 {
		t.Fatalf("InspectPod: %v %v", p, err)
	}
	// Events come from looking at the pods at intervals: the exit is seen
	// before gc removes the pod, then the removal.
	var types []v1alpha.EventType
	gcDone := false
	for len(types) == 0 || types[len(types)-1] != v1alpha.EventType_EVENT_TYPE_POD_REMOVED {
		if !gcDone && len(types) > 0 && types[len(types)-1] == v1alpha.EventType_EVENT_TYPE_POD_EXITED {
			e.mustOrbit("gc", "--grace-period=0")
			gcDone = true
		}
		r, err := events.Recv()
		if err != nil {
			t.Fatalf("events so far %v: %v", types, err)
		}
		for _, ev := range r.Events {
			if ev.PodId != uuid {
				t.Errorf("event of another pod: %v", ev)
			}
			types = append(types, ev.Type)
		}
	}
	want := []v1alpha.EventType{v1alpha.EventType_EVENT_TYPE_POD_PREPARED, v1alpha.EventType_EVENT_TYPE_POD_STARTED,
		v1alpha.EventType_EVENT_TYPE_POD_EXITED, v1alpha.EventType_EVENT_TYPE_POD_REMOVED}
	if len(types) != len(want) {
		t.Fatalf("events %v, want %v", types, want)
	}
	for i := range want {
		if types[i] != want[i] {
			t.Fatalf("events %v, want %v", types, want)
		}
	}
	if _, err := c.InspectPod(ctx, &v1alpha.InspectPodRequest{Id: uuid}); status.Code(err) != codes.NotFound {
		t.Errorf("InspectPod after gc: %v", err)
	}
	// The example client.
	out, err := exec.Command(filepath.Join(build, "bin", "orbit-api-client"), "-socket="+sock, "images", "-name="+demoName).CombinedOutput()
	if err != nil || !strings.Contains(string(out), imgs.Images[0].Id) {
		t.Errorf("orbit-api-client images: %v\n%s", err, out)
	}
}
