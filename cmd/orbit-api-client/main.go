// Command orbit-api-client is a small example client of Orbit's read-only
// API (orbit api-service, docs/api.md), written against the generated Go
// client in api/v1alpha:
//
//	orbit-api-client [-socket=PATH | -addr=HOST:PORT] info
//	orbit-api-client ... pods [-state=running] [-app=NAME]
//	orbit-api-client ... pod UUID
//	orbit-api-client ... images [-name=NAME]
//	orbit-api-client ... events [UUID...]
//	orbit-api-client ... logs [-app=NAME] [-follow] [-tail=N] UUID
//
// Answers print as JSON, one message a line.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/orbit-pods/orbit/api/v1alpha"
)

func main() {
	socket := flag.String("socket", "/run/orbit/api.sock", "the API's unix socket")
	addr := flag.String("addr", "", "the API's TCP address instead (loopback)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: orbit-api-client [-socket=PATH|-addr=HOST:PORT] info|pods|pod UUID|images|events [UUID...]|logs [-app=NAME] [-follow] [-tail=N] UUID")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	target := "unix://" + *socket
	if *addr != "" {
		target = *addr
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fail(err)
	}
	defer conn.Close()
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGINT, unix.SIGTERM)
	defer stop()
	if err := run(ctx, v1alpha.NewPublicAPIClient(conn), flag.Arg(0), flag.Args()[1:]); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "orbit-api-client:", err)
	os.Exit(1)
}

func print(m proto.Message) {
	b, err := protojson.Marshal(m)
	if err != nil {
		fail(err)
	}
	fmt.Println(string(b))
}

func run(ctx context.Context, c v1alpha.PublicAPIClient, verb string, args []string) error {
	fs := flag.NewFlagSet(verb, flag.ExitOnError)
	switch verb {
	case "info":
		r, err := c.GetInfo(ctx, &v1alpha.GetInfoRequest{})
		if err != nil {
			return err
		}
		print(r)
	case "pods":
		st := fs.String("state", "", "only pods in this state (running, exited, ...)")
		app := fs.String("app", "", "only pods with an app of this name")
		fs.Parse(args)
		f := &v1alpha.PodFilter{}
		if *st != "" {
			v, ok := v1alpha.PodState_value["POD_STATE_"+strings.ToUpper(*st)]
			if !ok {
				return fmt.Errorf("unknown state %q", *st)
			}
			f.States = []v1alpha.PodState{v1alpha.PodState(v)}
		}
		if *app != "" {
			f.AppNames = []string{*app}
		}
		r, err := c.ListPods(ctx, &v1alpha.ListPodsRequest{Filters: []*v1alpha.PodFilter{f}})
		if err != nil {
			return err
		}
		for _, p := range r.Pods {
			print(p)
		}
	case "pod":
		if len(args) != 1 {
			return fmt.Errorf("pod: want one UUID")
		}
		r, err := c.InspectPod(ctx, &v1alpha.InspectPodRequest{Id: args[0]})
		if err != nil {
			return err
		}
		print(r.Pod)
	case "images":
		name := fs.String("name", "", "only images of this name")
		fs.Parse(args)
		req := &v1alpha.ListImagesRequest{}
		if *name != "" {
			req.Filters = []*v1alpha.ImageFilter{{Names: []string{*name}}}
		}
		r, err := c.ListImages(ctx, req)
		if err != nil {
			return err
		}
		for _, i := range r.Images {
			print(i)
		}
	case "events":
		s, err := c.ListenEvents(ctx, &v1alpha.ListenEventsRequest{PodIds: args})
		if err != nil {
			return err
		}
		return recvAll(ctx, s.Recv, func(r *v1alpha.ListenEventsResponse) {
			for _, e := range r.Events {
				print(e)
			}
		})
	case "logs":
		app := fs.String("app", "", "only this app")
		follow := fs.Bool("follow", false, "go on until the pod exits")
		tail := fs.Int("tail", 0, "start at each app's last N lines")
		fs.Parse(args)
		if fs.NArg() != 1 {
			return fmt.Errorf("logs: want one UUID")
		}
		s, err := c.GetLogs(ctx, &v1alpha.GetLogsRequest{PodId: fs.Arg(0), AppName: *app, Follow: *follow, Tail: int32(*tail)})
		if err != nil {
			return err
		}
		return recvAll(ctx, s.Recv, func(r *v1alpha.GetLogsResponse) {
			for _, l := range r.Lines {
				print(l)
			}
		})
	default:
		return fmt.Errorf("unknown command %q", verb)
	}
	return nil
}

// recvAll prints a stream's messages until it ends or ctx does.
func recvAll[T any](ctx context.Context, recv func() (*T, error), each func(*T)) error {
	for {
		m, err := recv()
		if err == io.EOF || ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		each(m)
	}
}
