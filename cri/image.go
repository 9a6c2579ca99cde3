package cri

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/orbit-pods/orbit/image/store"
	"github.com/orbit-pods/orbit/stage0"
)

// Mirrors maps registry hosts to where their images are fetched from
// instead: "registry.k8s.io" to "127.0.0.1:5000/registry.k8s.io" fetches
// registry.k8s.io/pause:3.10 as 127.0.0.1:5000/registry.k8s.io/pause:3.10,
// and records it under the name asked for.
type Mirrors map[string]string

// ParseMirror reads HOST=MIRROR[/PREFIX].
func ParseMirror(s string) (host, mirror string, err error) {
	host, mirror, ok := strings.Cut(s, "=")
	if !ok || host == "" || mirror == "" || strings.Contains(host, "/") {
		return "", "", fmt.Errorf("registry mirror %q: want HOST=MIRROR[/PREFIX]", s)
	}
	return host, strings.TrimSuffix(mirror, "/"), nil
}

// splitRegistry splits an image name into its registry host and the rest,
// with Docker's defaults for names with no host.
func splitRegistry(ref string) (host, rest string) {
	first, after, ok := strings.Cut(ref, "/")
	if ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return first, after
	}
	if !ok {
		return "docker.io", "library/" + ref
	}
	return "docker.io", ref
}

// source is the docker:// source an image name is fetched from.
func (m Mirrors) source(ref string) string {
	host, rest := splitRegistry(ref)
	if mirror, ok := m[host]; ok {
		return "docker://" + mirror + "/" + rest
	}
	return "docker://" + host + "/" + rest
}

// PullImage fetches an image into the store under the name asked for.
func (s *Server) PullImage(ctx context.Context, req *runtimeapi.PullImageRequest) (*runtimeapi.PullImageResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, invalid("no image given")
	}
	if strings.Contains(ref, "://") {
		return nil, invalid("image %q: give an image name, not a URL", ref)
	}
	st, err := s.cfg.Env.Store()
	if err != nil {
		return nil, grpcError("open the image store", err)
	}
	fo := stage0.FetchOptions{InsecureHTTP: s.cfg.InsecureHTTP, Name: ref}
	img, err := stage0.Fetch(stage0.WithFetchOptions(ctx, fo), st, s.cfg.Mirrors.source(ref))
	if err != nil {
		code := codes.Unknown
		msg := err.Error()
		if strings.Contains(msg, "MANIFEST_UNKNOWN") || strings.Contains(msg, "NAME_UNKNOWN") || strings.Contains(msg, "not found") {
			code = codes.NotFound
		}
		return nil, status.Errorf(code, "pull image %s: %v", ref, err)
	}
	return &runtimeapi.PullImageResponse{ImageRef: img.ID.String()}, nil
}

// resolveImage finds a stored image by name, ID, or NAME@DIGEST, where
// DIGEST is the image's ID and NAME one of its repositories.
func resolveImage(st *store.Store, ref string) (*store.Image, error) {
	repo, dgst, ok := strings.Cut(ref, "@")
	if !ok || !strings.HasPrefix(dgst, "sha256:") {
		return st.Resolve(ref)
	}
	img, err := st.Resolve(dgst)
	if err != nil {
		return nil, err
	}
	if img.ID.String() == dgst {
		for _, n := range img.Names {
			if n == ref || strings.HasPrefix(n, repo+":") || strings.HasPrefix(n, repo+"@") {
				return img, nil
			}
		}
	}
	return nil, fmt.Errorf("%q: %w", ref, store.ErrNotFound)
}

// criImage describes a stored image in the CRI's terms.
func criImage(st *store.Store, img *store.Image) *runtimeapi.Image {
	out := &runtimeapi.Image{Id: img.ID.String(), Size: uint64(img.Size)}
	for _, n := range img.Names {
		if repo, _, ok := strings.Cut(n, "@"); ok {
			out.RepoDigests = append(out.RepoDigests, repo+"@"+img.ID.String())
			continue
		}
		out.RepoTags = append(out.RepoTags, n)
		repo := n[:strings.LastIndex(n, ":")]
		if !strings.Contains(n[strings.LastIndex(n, "/")+1:], ":") {
			repo = n
		}
		d := repo + "@" + img.ID.String()
		if !containsString(out.RepoDigests, d) {
			out.RepoDigests = append(out.RepoDigests, d)
		}
	}
	if raw, err := st.ReadBlob(img.Config); err == nil {
		var cfg ocispec.Image
		if json.Unmarshal(raw, &cfg) == nil {
			user, _, _ := strings.Cut(cfg.Config.User, ":")
			if n, err := strconv.ParseInt(user, 10, 64); err == nil {
				out.Uid = &runtimeapi.Int64Value{Value: n}
			} else {
				out.Username = user
			}
		}
	}
	return out
}

func containsString(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// ListImages lists the store's images.
func (s *Server) ListImages(ctx context.Context, req *runtimeapi.ListImagesRequest) (*runtimeapi.ListImagesResponse, error) {
	st, err := s.cfg.Env.Store()
	if err != nil {
		return nil, grpcError("open the image store", err)
	}
	imgs, err := st.List()
	if err != nil {
		return nil, grpcError("list images", err)
	}
	want := req.GetFilter().GetImage().GetImage()
	var wantID string
	if want != "" {
		img, err := resolveImage(st, want)
		if err != nil {
			return &runtimeapi.ListImagesResponse{}, nil
		}
		wantID = img.ID.String()
	}
	var out []*runtimeapi.Image
	for _, img := range imgs {
		if wantID != "" && img.ID.String() != wantID {
			continue
		}
		out = append(out, criImage(st, img))
	}
	return &runtimeapi.ListImagesResponse{Images: out}, nil
}

// ImageStatus reports one image; an image not in the store is no error,
// but a response without one.
func (s *Server) ImageStatus(ctx context.Context, req *runtimeapi.ImageStatusRequest) (*runtimeapi.ImageStatusResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, invalid("no image given")
	}
	st, err := s.cfg.Env.Store()
	if err != nil {
		return nil, grpcError("open the image store", err)
	}
	img, err := resolveImage(st, ref)
	if errors.Is(err, store.ErrNotFound) {
		return &runtimeapi.ImageStatusResponse{}, nil
	}
	if err != nil {
		return nil, grpcError("image "+ref, err)
	}
	resp := &runtimeapi.ImageStatusResponse{Image: criImage(st, img)}
	if req.Verbose {
		resp.Info = map[string]string{"config": img.Config.String(), "mediaType": img.MediaType}
	}
	return resp, nil
}

// RemoveImage removes an image; removing one that is not there succeeds.
func (s *Server) RemoveImage(ctx context.Context, req *runtimeapi.RemoveImageRequest) (*runtimeapi.RemoveImageResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, invalid("no image given")
	}
	st, err := s.cfg.Env.Store()
	if err != nil {
		return nil, grpcError("open the image store", err)
	}
	img, err := resolveImage(st, ref)
	if errors.Is(err, store.ErrNotFound) {
		return &runtimeapi.RemoveImageResponse{}, nil
	}
	if err != nil {
		return nil, grpcError("image "+ref, err)
	}
	if err := s.cfg.Env.RemoveImages(ctx, []string{img.ID.String()}); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return &runtimeapi.RemoveImageResponse{}, nil // removed meanwhile
		}
		if errors.Is(err, store.ErrInUse) {
			return nil, status.Errorf(codes.FailedPrecondition, "remove image %s: %v", ref, err)
		}
		return nil, grpcError("remove image "+ref, err)
	}
	return &runtimeapi.RemoveImageResponse{}, nil
}

// ImageFsInfo reports the filesystem of the image store.
func (s *Server) ImageFsInfo(ctx context.Context, req *runtimeapi.ImageFsInfoRequest) (*runtimeapi.ImageFsInfoResponse, error) {
	st, err := s.cfg.Env.Store()
	if err != nil {
		return nil, grpcError("open the image store", err)
	}
	imgs, err := st.List()
	if err != nil {
		return nil, grpcError("list images", err)
	}
	var used uint64
	for _, img := range imgs {
		used += uint64(img.Size)
	}
	dir := s.cfg.Env.DataDir + "/images"
	var sfs unix.Statfs_t
	var inodes uint64
	if err := unix.Statfs(dir, &sfs); err == nil {
		inodes = sfs.Files - sfs.Ffree
	}
	fs := &runtimeapi.FilesystemUsage{
		Timestamp:  time.Now().UnixNano(),
		FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: dir},
		UsedBytes:  &runtimeapi.UInt64Value{Value: used},
		InodesUsed: &runtimeapi.UInt64Value{Value: inodes},
	}
	return &runtimeapi.ImageFsInfoResponse{ImageFilesystems: []*runtimeapi.FilesystemUsage{fs}, ContainerFilesystems: []*runtimeapi.FilesystemUsage{fs}}, nil
}
