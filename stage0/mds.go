package stage0

import (
	"context"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/orbit-pods/orbit/image/aci"
	"github.com/orbit-pods/orbit/image/store"
	"github.com/orbit-pods/orbit/metadata"
	"github.com/orbit-pods/orbit/pod"
)

// A pod run with --mds-register is registered with the appc metadata
// service by its stage1; stage0 checks that the service runs and writes
// what stage1 sends it: the pod's appc pod manifest and each app's appc
// image manifest and image ID. For an image made from an ACI these are the
// ACI's own; an OCI image gets an image manifest made from its name and
// process, and an appc ID ("sha512-" and the hex SHA-512 of its OCI
// manifest, as appc IDs are SHA-512s).

// checkMetadataService fails unless a metadata service answers at socket.
func checkMetadataService(ctx context.Context, socket string) error {
	if err := metadata.NewClient(socket).Ping(ctx); err != nil {
		return fmt.Errorf("--mds-register: %w", err)
	}
	return nil
}

// writeMDSRegistration writes the registration of the pod m describes.
func writeMDSRegistration(st *store.Store, dir pod.Dir, m *pod.Manifest, used []*store.Image) error {
	reg, err := mdsRegistration(st, m, used)
	if err != nil {
		return fmt.Errorf("metadata service registration: %w", err)
	}
	b, err := json.Marshal(reg)
	if err != nil {
		return fmt.Errorf("metadata service registration: %w", err)
	}
	if err := os.WriteFile(dir.MDSRegistrationFile(), b, 0o600); err != nil {
		return fmt.Errorf("metadata service registration: %w", err)
	}
	return nil
}

func mdsRegistration(st *store.Store, m *pod.Manifest, used []*store.Image) (*metadata.Registration, error) {
	reg := &metadata.Registration{UUID: m.UUID, Apps: map[string]metadata.App{}}
	pm := schema.BlankPodManifest()
	for i := range m.Apps {
		a := &m.Apps[i]
		img := used[i]
		im, id, err := appcImage(st, img, a)
		if err != nil {
			return nil, fmt.Errorf("app %s: %w", a.Name, err)
		}
		imb, err := json.Marshal(im)
		if err != nil {
			return nil, fmt.Errorf("app %s: image manifest: %w", a.Name, err)
		}
		reg.Apps[a.Name] = metadata.App{ImageManifest: imb, ImageID: id.String()}
		ra := schema.RuntimeApp{
			Name:           types.ACName(a.Name),
			Image:          schema.RuntimeImage{Name: &im.Name, ID: *id, Labels: im.Labels},
			App:            runtimeApp(a, im),
			ReadOnlyRootFS: a.ReadOnlyRootfs,
		}
		for _, mp := range a.Mounts {
			ra.Mounts = append(ra.Mounts, schema.Mount{Volume: types.ACName(mp.Volume), Path: mp.Path})
		}
		pm.Apps = append(pm.Apps, ra)
	}
	for _, v := range m.Volumes {
		ro := v.ReadOnly
		tv := types.Volume{Name: types.ACName(v.Name), Kind: v.Kind, Source: v.Source, ReadOnly: &ro}
		if v.Kind == pod.VolumeEmpty {
			mode, uid, gid := v.Mode, int(v.UID), int(v.GID)
			if mode == 0 {
				mode = 0o755
			}
			ms := fmt.Sprintf("%04o", mode)
			tv.Mode, tv.UID, tv.GID = &ms, &uid, &gid
		}
		pm.Volumes = append(pm.Volumes, tv)
	}
	names := make([]string, 0, len(m.Annotations))
	for k := range m.Annotations {
		names = append(names, k)
	}
	sort.Strings(names)
	pm.Annotations = types.Annotations{}
	for _, k := range names {
		n, err := types.SanitizeACIdentifier(k)
		if err != nil {
			return nil, fmt.Errorf("annotation %q: %w", k, err)
		}
		pm.Annotations.Set(types.ACIdentifier(n), m.Annotations[k])
	}
	b, err := json.Marshal(pm)
	if err != nil {
		return nil, fmt.Errorf("appc pod manifest: %w", err)
	}
	reg.Manifest = b
	return reg, nil
}

// runtimeApp is the app as it runs, in appc terms.
func runtimeApp(a *pod.App, im *schema.ImageManifest) *types.App {
	ta := &types.App{
		Exec:             types.Exec(a.Process.Args),
		User:             strconv.FormatUint(uint64(a.Process.User.UID), 10),
		Group:            strconv.FormatUint(uint64(a.Process.User.GID), 10),
		WorkingDirectory: a.Process.Cwd,
	}
	for _, g := range a.Process.User.AdditionalGids {
		ta.SupplementaryGIDs = append(ta.SupplementaryGIDs, int(g))
	}
	for _, kv := range a.Process.Env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			ta.Environment.Set(k, v)
		}
	}
	if im.App != nil {
		ta.EventHandlers = im.App.EventHandlers
		ta.MountPoints = im.App.MountPoints
		ta.Ports = im.App.Ports
		ta.Isolators = im.App.Isolators
	}
	return ta
}

// appcImage is an image's appc manifest and ID.
func appcImage(st *store.Store, img *store.Image, a *pod.App) (*schema.ImageManifest, *types.Hash, error) {
	raw, err := st.ReadBlob(img.ID)
	if err != nil {
		return nil, nil, err
	}
	var om struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(raw, &om); err != nil {
		return nil, nil, fmt.Errorf("manifest %s: %w", img.ID, err)
	}
	am, err := storedAppcManifest(st, img)
	if err != nil {
		return nil, nil, err
	}
	if am != nil {
		if id, ok := om.Annotations[aci.AnnotationImageID]; ok {
			h, err := types.NewHash(id)
			if err != nil {
				return nil, nil, fmt.Errorf("appc image ID %q of %s: %w", id, img.ID, err)
			}
			return am, h, nil
		}
	}
	sum := sha512.Sum512(raw)
	h, err := types.NewHash("sha512-" + hex.EncodeToString(sum[:]))
	if err != nil {
		return nil, nil, err
	}
	if am != nil {
		return am, h, nil
	}
	name := a.Image.Name
	if name == "" && len(img.Names) > 0 {
		name = img.Names[0]
	}
	if name == "" {
		name = a.Name
	}
	// An appc name has no tag: it becomes the version label.
	var labels types.Labels
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		labels = append(labels, types.Label{Name: "version", Value: name[i+1:]})
		name = name[:i]
	}
	san, err := types.SanitizeACIdentifier(filepath.ToSlash(name))
	if err != nil {
		return nil, nil, fmt.Errorf("image name %q as an appc name: %w", name, err)
	}
	labels = append(labels, types.Label{Name: "os", Value: "linux"})
	im := schema.BlankImageManifest()
	im.Name = types.ACIdentifier(san)
	im.Labels = labels
	im.App = runtimeApp(a, &schema.ImageManifest{})
	return im, h, nil
}
